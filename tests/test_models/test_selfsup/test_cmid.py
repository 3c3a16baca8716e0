"""The CMID algorithm step for ResNet, Swin and ViT students (tiny sizes, CPU)."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import cmid_mm  # noqa: F401

SIZE = 64  # 2x2 blocks of 32 px; token grid 16x16


def _cfg(backbone, feat_ch, stride=32, num_matches=2, with_bn=False):
    return dict(
        type='CMID',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0., 0., 0.],
                               std=[1., 1., 1.]),
        backbone=backbone,
        mim_head=dict(type='CMIDMIMHead', in_channels=feat_ch, encoder_stride=stride,
                      in_chans=3),
        global_neck=dict(type='MoCoV2Neck', in_channels=feat_ch, hid_channels=32,
                         out_channels=16, with_avg_pool=True),
        global_head=dict(type='QueueContrastiveHead', feat_dim=16, queue_len=16,
                         temperature=0.2),
        local_neck=dict(type='CMIDLocalNeck', in_channels=feat_ch, hid_channels=32,
                        bottleneck_channels=8, out_channels=24, num_layers=3,
                        with_bn=with_bn),
        local_head=dict(type='DINOLocalHead', out_channels=24),
        num_matches=num_matches)


CONFIGS = {
    'resnet': _cfg(dict(type='CMIDResNet', depth=18, out_indices=(3, )), 512, with_bn=True),
    'swin': _cfg(
        dict(type='CMIDSwinTransformer', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                   num_heads=[1, 1, 2, 2]),
             img_size=SIZE, window_size=2, out_indices=(3, )), 128),
    'vit': _cfg(
        dict(type='CMIDVisionTransformer', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                     feedforward_channels=64),
             img_size=SIZE, patch_size=16, out_type='featmap'), 32, stride=16, num_matches=6),
}


def _batch(batch_size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(batch_size, 3, SIZE, SIZE, generator=g) for _ in range(2)]
    samples = []
    for i in range(batch_size):
        ds = DataSample()
        mask = np.zeros((2, 16, 16), np.uint8)
        mask[0, :8, :8] = 1  # view A: top-left block
        mask[1, 8:, 8:] = 1  # view B: bottom-right block
        ds.set_mask(mask)
        ds.set_field(np.array([[0, 0, 100, 100], [20 + i, 10, 90, 80]], np.float32),
                     'crop_bbox')
        ds.set_field(np.array([[200, 200], [200, 200]]), 'crop_src_shape')
        ds.set_field(np.array([False, i % 2 == 1]), 'flip')
        samples.append(ds)
    return views, samples


def _setup_hub(max_iters=10):
    MessageHub.get_current_instance().update_info('max_iters', max_iters)


@pytest.mark.parametrize('arch', sorted(CONFIGS))
def test_step_losses_gradients_and_teacher(arch):
    torch.manual_seed(0)
    _setup_hub()
    model = MODELS.build(copy.deepcopy(CONFIGS[arch]))
    model.init_weights()
    model.train()
    views, samples = _batch()
    losses = model.loss(views, samples)
    assert set(losses) == {'loss_rec', 'loss_global', 'loss_local'}
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    # InfoNCE over 1 positive + 16 negatives starts near log(17); DINO CE is positive.
    assert 0 < losses['loss_global'].item() < 3 * math.log(17)
    assert losses['loss_local'].item() > 0
    sum(losses.values()).backward()

    # Gradients reach every trainable student part ...
    for name in ('backbone', 'mim_head', 'global_neck', 'local_neck'):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f'{name} has parameters w/o grad'
    assert model.backbone.mask_token.grad.abs().sum() > 0
    # ... and nothing reaches the teacher, whose parameters are frozen copies.
    teacher_params = list(model.teacher.parameters())
    assert teacher_params and all(not p.requires_grad and p.grad is None
                                  for p in teacher_params)
    # After the first step the teacher's parameters are an exact copy of the student's
    # (BN running statistics differ: both run BN in train mode on different inputs).
    student = dict(model._student_modules().named_parameters())
    for k, v in model.teacher.module.named_parameters():
        assert torch.equal(v, student[k]), k
    # Queue advanced by both views' keys (2 x B), centre moved away from zero.
    assert int(model.global_head.queue_ptr) == 8
    assert model.local_head.center.abs().sum() > 0


def test_teacher_changes_only_by_ema():
    torch.manual_seed(0)
    max_iters = 10
    _setup_hub(max_iters)
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    model.init_weights()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    views, samples = _batch()
    sum(model.loss(views, samples).values()).backward()  # step 0: teacher := student
    opt.step()
    opt.zero_grad()
    before = {k: v.clone() for k, v in model.teacher.module.named_parameters()}
    student = dict(model._student_modules().named_parameters())
    sum(model.loss(views, samples).values()).backward()  # step 1: EMA update
    # CosineEMA weight at step 1: m = 0 - (0 - 0.004) * (cos(pi/10) + 1) / 2
    m = 0.004 * (math.cos(math.pi * 1 / max_iters) + 1) / 2
    changed = 0
    for k, after in model.teacher.module.named_parameters():
        expected = before[k] * (1 - m) + student[k].detach() * m
        assert torch.allclose(after, expected, atol=1e-6), k
        changed += int(not torch.equal(after, before[k]))
    assert changed > 0


def test_loss_weights_scale_each_term():
    _setup_hub()
    losses = []
    for weights in (None, dict(loss_rec=2.0, loss_global=0.5, loss_local=0.0)):
        torch.manual_seed(0)
        cfg = copy.deepcopy(CONFIGS['resnet'])
        cfg['loss_weights'] = weights
        model = MODELS.build(cfg)
        model.init_weights()
        losses.append(model.loss(*_batch()))
    assert torch.allclose(losses[1]['loss_rec'], 2.0 * losses[0]['loss_rec'])
    assert torch.allclose(losses[1]['loss_global'], 0.5 * losses[0]['loss_global'])
    assert losses[1]['loss_local'].item() == 0.0
    cfg = copy.deepcopy(CONFIGS['resnet'])
    cfg['loss_weights'] = dict(loss_mim=1.0)
    with pytest.raises(KeyError, match='loss_mim'):
        MODELS.build(cfg)


def test_extract_feat_is_the_unmasked_student():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    model.eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    feats = model.extract_feat(x)
    assert feats[-1].shape == (2, 512, 2, 2)
    assert torch.equal(feats[-1], model.backbone(x)[-1])


def test_single_view_input_is_a_clear_error():
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    views, samples = _batch()
    with pytest.raises(ValueError, match='two views'):
        model.loss([views[0]], samples)


def test_non_finite_loss_names_term_and_iteration():
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 41)
    _setup_hub()
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    views, samples = _batch()
    views[0][0, 0, 0, 0] = float('nan')  # one corrupt pixel
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    with pytest.raises(FloatingPointError, match=r'iteration 41.*loss_rec'):
        model.loss(views, samples)
    # parameters untouched (buffers such as the queue may have advanced)
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]), k


@pytest.mark.parametrize('arch', ['swin', 'vit', 'resnet'])
def test_joint_views_pass(arch):
    """joint_views=True: one backbone pass of 2B images. Without batch statistics (Swin, ViT)
    the losses and gradients are those of two passes; with BN (ResNet) BN normalises over
    both views, so the losses differ, and the running statistics are updated once."""
    _setup_hub()
    results = {}
    for joint in (False, True):
        torch.manual_seed(0)
        cfg = dict(copy.deepcopy(CONFIGS[arch]), joint_views=joint)
        if arch == 'swin':  # stochastic depth draws per pass (the CMID configs set 0.0)
            cfg['backbone']['drop_path_rate'] = 0.0
        model = MODELS.build(cfg)
        model.init_weights()
        model.train()
        losses = model.loss(*_batch())
        sum(losses.values()).backward()
        grads = {k: p.grad.clone() for k, p in model.backbone.named_parameters()
                 if p.grad is not None}
        results[joint] = ({k: v.item() for k, v in losses.items()}, grads, model)
    (sep, g_sep, m_sep), (joint, g_joint, m_joint) = results[False], results[True]
    if arch == 'resnet':
        assert all(math.isfinite(v) for v in joint.values())
        assert joint['loss_rec'] != pytest.approx(sep['loss_rec'], rel=1e-6)
        bn = m_joint.backbone.bn1
        assert int(bn.num_batches_tracked) == 1
        assert int(m_sep.backbone.bn1.num_batches_tracked) == 2
        # the student's stem BN saw the two masked views: once together (joint), or one after
        # the other (momentum 0.1, running mean starting at 0); conv1 is not updated by loss()
        from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask
        views, samples = _batch()
        masks = torch.stack([torch.as_tensor(ds.mask) for ds in samples])
        with torch.no_grad():
            means = [m_sep.backbone.conv1(mean_fill(v, upsample_mask(masks[:, i], (SIZE, SIZE))))
                     .mean(dim=(0, 2, 3)) for i, v in enumerate(views)]
        assert torch.allclose(bn.running_mean, 0.1 * (means[0] + means[1]) / 2, atol=1e-5)
        assert torch.allclose(m_sep.backbone.bn1.running_mean,
                              0.9 * 0.1 * means[0] + 0.1 * means[1], atol=1e-5)
        return
    for k in sep:
        assert joint[k] == pytest.approx(sep[k], rel=1e-5, abs=1e-6), k
    assert g_sep.keys() == g_joint.keys() and len(g_sep) > 0
    for k in g_sep:
        assert torch.allclose(g_joint[k], g_sep[k], rtol=1e-4, atol=1e-6), k
