"""The CMID step's speed changes keep its maths: channels-last ResNet passes (float rounding
only, bounded by float64) and bfloat16 autocast (losses in float32, close to the float32
step)."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401
from cmid_mm.engine.optimizers import CPUAutocastOptimWrapper, cpu_bf16_supported
from tests.test_models.test_selfsup.test_cmid import CONFIGS
from tests.test_models.test_selfsup.test_cmid import _batch as cmid_batch
from tests.utils import REPO, load_tool

RESNET, SWIN = CONFIGS['resnet'], CONFIGS['swin']  # the tiny models of test_cmid.py


def _batch(batch_size=4, dtype=torch.float32):
    views, samples = cmid_batch(batch_size)
    return [v.to(dtype) for v in views], samples


def _model(cfg=RESNET, **kwargs):
    MessageHub.get_current_instance().update_info('max_iters', 10)
    torch.manual_seed(0)
    model = MODELS.build(dict(copy.deepcopy(cfg), **kwargs))
    model.init_weights()
    return model.train()


def _losses_and_grads(model, dtype=torch.float32):
    losses = model.loss(*_batch(dtype=dtype))
    sum(losses.values()).backward()
    grads = torch.cat([p.grad.flatten().double() for p in model.parameters()
                       if p.grad is not None])
    return {k: v.item() for k, v in losses.items()}, grads


def test_channels_last_by_default_for_resnet_only_and_reaches_every_conv():
    assert _model(SWIN).channels_last is False
    model = _model()
    assert model.channels_last is True
    seen = []
    convs = [m for m in list(model.backbone.modules()) + list(model.teacher.module.modules())
             if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        conv.register_forward_pre_hook(
            lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    model.loss(*_batch())
    # 2 student and 2 teacher passes through every convolution, all in NHWC
    assert len(seen) == 2 * len(convs) and all(seen)
    # the weights are NHWC too, student and teacher ...
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not model.backbone.layer1[0].conv1.weight.is_contiguous()  # a 3x3 kernel
    # ... but the state dict is what it was: same names, shapes and (contiguous) layout
    state, plain = model.state_dict(), _model(channels_last=False).state_dict()
    assert list(state) == list(plain)
    assert all(v.is_contiguous() and v.shape == plain[k].shape for k, v in state.items())
    assert any(k.startswith('teacher.module.backbone.') and k.endswith('conv1.weight')
               for k in state)
    # the same seed gives the same initial weights as without channels_last
    fresh = _model().state_dict()
    assert all(torch.equal(v, plain[k]) for k, v in fresh.items())
    # and a checkpoint of either layout loads into the other with the same values
    other = _model(channels_last=False)
    other.load_state_dict(state)
    model.load_state_dict(other.state_dict())
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in model.state_dict().items())


def test_channels_last_differs_by_float32_rounding_only():
    """Against a float64 run of the same step, the channels-last step (losses and all student
    gradients) is about as far off as the NCHW float32 step is: different kernels, rounding
    errors of the same size, no change of the maths. The bound, 8x the NCHW error, leaves
    room for the kernels' different blocking and summation orders (measured here: 2x for the
    gradients, <= 1x for the losses); a change of the maths (say a layout read wrongly)
    would be off by orders of magnitude more (the NCHW gradient error is ~1e-5 relative)."""
    ref_losses, ref_grads = _losses_and_grads(_model(channels_last=False).double(),
                                              torch.float64)
    nchw_losses, nchw_grads = _losses_and_grads(_model(channels_last=False))
    cl_losses, cl_grads = _losses_and_grads(_model(channels_last=True))
    for k, ref in ref_losses.items():
        floor = 8 * torch.finfo(torch.float32).eps * abs(ref)  # a few float32 roundings
        assert abs(cl_losses[k] - ref) <= 8 * max(abs(nchw_losses[k] - ref), floor), k
    nchw_err = (nchw_grads - ref_grads).norm()
    assert 0 < nchw_err < 1e-4 * ref_grads.norm()  # float32 rounding, not noise
    assert (cl_grads - ref_grads).norm() <= 8 * nchw_err


def _demo_model_and_batch(batch_size=4):
    """The demo config's CMID (ResNet-18, real head sizes) and a batch of real images of
    data/rs_sample through its train pipeline (128 px views)."""
    from mmengine.dataset import default_collate
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'))
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                  data_root=osp.join(REPO, 'data', 'rs_sample')))
    for t in dataset.pipeline.transforms:
        if hasattr(t, 'set_epoch'):
            t.set_epoch(0, 0)
    batch = default_collate([dataset[i] for i in range(batch_size)])
    return _model(cfg.model.to_dict()), batch


def _autocast_losses(model, batch):
    """Losses of one forward pass in the context CPUAutocastOptimWrapper gives train_step;
    records the dtypes the backbone and the local head return and the DINO loss receives."""
    seen = {}

    def backbone_out(module, args, out):
        seen.setdefault('backbone_out', out[-1].dtype)

    def head_out(module, args, out):
        seen.setdefault('local_head_out', out.dtype)

    dino_loss = model.local_head.loss

    def dino_in(*args):
        seen.setdefault('dino_in', {x.dtype for x in args})
        return dino_loss(*args)
    model.backbone.register_forward_hook(backbone_out)
    model.local_neck.register_forward_hook(head_out)
    model.local_head.loss = dino_in
    wrapper = CPUAutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    with wrapper.optim_context(model):
        data = model.data_preprocessor(batch, True)
        losses = model.loss(data['inputs'], data['data_samples'])
    return losses, seen


def test_bf16_autocast_losses_in_float32_and_close_to_float32():
    """The first step of the demo model on real images, under bfloat16 autocast and in
    float32, from the same weights. bfloat16 keeps 8 significant bits (unit roundoff
    u = 2**-9 ~ 2e-3); the losses are means over many terms, computed in float32 from the
    bfloat16 activations, so their relative error stays within about u: the bound is 2e-3
    (projects/benchmarks/amp_loss_diff.py measured <= 6.3e-5 on the demo's first step). Real
    images: on random-noise images with 2x2 last maps, BatchNorm over 16 values per channel
    amplifies the rounding far more."""
    model, batch = _demo_model_and_batch()
    data = model.data_preprocessor(batch, True)
    fp32 = {k: v.item() for k, v in model.loss(data['inputs'], data['data_samples']).items()}
    model, batch = _demo_model_and_batch()
    losses, seen = _autocast_losses(model, batch)
    assert seen['backbone_out'] == torch.bfloat16  # autocast was on in the backbone ...
    # ... and the local heads and the DINO loss ran in float32
    assert seen['local_head_out'] == torch.float32 and seen['dino_in'] == {torch.float32}
    for k, v in losses.items():
        assert v.dtype == torch.float32, k
        assert v.item() == pytest.approx(fp32[k], rel=2e-3), k
    assert any(v.item() != fp32[k] for k, v in losses.items())  # not silently float32


def test_bf16_train_step_updates_float32_weights():
    init_default_scope('mmpretrain')
    model = _model()
    optim = build_optim_wrapper(model, dict(
        type='CPUAutocastOptimWrapper', constructor='CMIDOptimWrapperConstructor',
        optimizer=dict(type='Adan', lr=1e-3, weight_decay=0.02)))
    before = model.backbone.conv1.weight.detach().clone()
    views, samples = _batch()
    log = model.train_step(dict(inputs=views, data_samples=samples), optim)
    assert all(np.isfinite(float(v)) for v in log.values())
    weight = model.backbone.conv1.weight
    state = optim.optimizer.state[weight]
    assert weight.dtype == torch.float32 and state['exp_avg'].dtype == torch.float32
    assert not torch.equal(weight, before) and torch.isfinite(weight).all()
    assert model.global_head.queue.dtype == torch.float32


def test_cpu_autocast_wrapper_refuses_float16():
    with pytest.raises(ValueError, match="dtype must be 'bfloat16'"):
        CPUAutocastOptimWrapper(
            optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
            dtype='float16')


def test_cpu_bf16_detection_agrees_with_cpuinfo():
    if not osp.exists('/proc/cpuinfo'):
        pytest.skip('no /proc/cpuinfo (not Linux)')
    with open('/proc/cpuinfo') as f:
        flags = next((line for line in f if line.startswith('flags')), '').split()
    assert cpu_bf16_supported() == ('avx512_bf16' in flags or 'amx_bf16' in flags)


def _train_tool():
    return load_tool('tools/train.py')


def _cfg_amp():
    return Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                          optimizer=dict(type='SGD', lr=0.1)),
                       train_dataloader=dict(num_workers=0)))


def test_train_amp_flag_gives_bf16_autocast_on_this_cpu():
    if torch.cuda.is_available():
        pytest.skip('GPU present: --amp means float16 + loss scaling there')
    if not cpu_bf16_supported():
        pytest.skip('this CPU has no native bfloat16: --amp falls back to float32')
    train = _train_tool()
    cfg = train.merge_args(_cfg_amp(), train.parse_args(['x.py', '--amp']))
    assert cfg.optim_wrapper.type == 'CPUAutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    init_default_scope('mmpretrain')
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(wrapper) is CPUAutocastOptimWrapper
    # a config asking for AMP without --amp stays float32, and says how to get bfloat16
    with pytest.warns(UserWarning, match='AMP needs a GPU.*pass --amp to train with bfloat16'):
        cfg = train.merge_args(_cfg_amp(), train.parse_args(['x.py']))
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
