"""cmid_mm 0.3 renamed the local branch to mmpretrain's DINO vocabulary (neck = projection,
head = loss and its state). The old registered names, config key, attribute and checkpoint
keys keep working for one release, with a warning naming the new name."""
import copy
import logging
import warnings

import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401
from cmid_mm.models.heads import DINOLocalHead
from cmid_mm.models.necks import CMIDLocalNeck

NECK = dict(in_channels=6, hid_channels=8, bottleneck_channels=4, out_channels=5)


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize('old,new,cfg', [
    ('CMIDLocalHead', CMIDLocalNeck, NECK),
    ('DINOLocalLoss', DINOLocalHead, dict(out_channels=5)),
])
def test_old_registered_names_build_the_new_classes_and_warn(old, new, cfg):
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        with pytest.warns(DeprecationWarning, match=f"{old}.*renamed '{new.__name__}'"):
            module = MODELS.build(dict(type=old, **cfg))
    finally:
        logger.removeHandler(handler)
    assert isinstance(module, new)
    assert any(new.__name__ in m and 'deprecated' in m for m in handler.messages)
    # the same state dict as the new class
    fresh = new(**cfg)
    assert list(module.state_dict()) == list(fresh.state_dict())
    fresh.load_state_dict(module.state_dict(), strict=True)


def test_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        MODELS.build(dict(type='CMIDLocalNeck', **NECK))
        MODELS.build(dict(type='DINOLocalHead', out_channels=5))


def _cmid_cfg(**local):
    cfg = dict(
        type='CMID',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0.] * 3, std=[1.] * 3),
        backbone=dict(type='CMIDResNet', depth=18, out_indices=(3, )),
        mim_head=dict(type='CMIDMIMHead', in_channels=512, encoder_stride=32, in_chans=3),
        global_neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=8, out_channels=4,
                         with_avg_pool=True),
        global_head=dict(type='QueueContrastiveHead', feat_dim=4, queue_len=8),
        local_neck=dict(type='CMIDLocalNeck', in_channels=512, hid_channels=8,
                        bottleneck_channels=4, out_channels=6, with_bn=True),
        num_matches=2)
    cfg.update(local)
    return cfg


def test_cmid_local_loss_key_still_builds_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'local_loss'.*'local_head'"):
        model = MODELS.build(_cmid_cfg(local_loss=dict(type='DINOLocalHead', out_channels=6,
                                                       teacher_temp=0.05)))
    assert isinstance(model.local_head, DINOLocalHead)
    assert model.local_head.teacher_temp == 0.05
    with pytest.warns(DeprecationWarning, match='CMID.local_head'):
        assert model.local_loss is model.local_head


def test_cmid_local_loss_override_merges_into_local_head():
    """A config inheriting a 0.3 base (local_head) and overriding the old key, e.g.
    --cfg-options model.local_loss.warmup_teacher_temp_epochs=49, keeps working."""
    with pytest.warns(DeprecationWarning):
        model = MODELS.build(_cmid_cfg(
            local_head=dict(type='DINOLocalHead', out_channels=6, teacher_temp=0.05),
            local_loss=dict(warmup_teacher_temp_epochs=49)))
    assert model.local_head.warmup_teacher_temp_epochs == 49
    assert model.local_head.teacher_temp == 0.05
    with pytest.warns(DeprecationWarning):  # an old subclass given under the old key
        model = MODELS.build(_cmid_cfg(local_head=dict(type='DINOLocalHead', out_channels=6),
                                       local_loss=dict(type='DINOLocalLoss', teacher_temp=0.06)))
    assert type(model.local_head) is DINOLocalHead and model.local_head.teacher_temp == 0.06
    with pytest.raises(TypeError, match="local_head=dict\\(type='DINOLocalHead'"):
        MODELS.build(_cmid_cfg())


def test_old_checkpoint_keys_load_into_the_new_model():
    """A checkpoint written before the rename (``local_loss.center``; teacher keys
    ``teacher.module.local_neck.*`` in the Conv1d layout) loads strictly, values intact."""
    torch.manual_seed(0)
    model = MODELS.build(_cmid_cfg(local_head=dict(type='DINOLocalHead', out_channels=6)))
    with torch.no_grad():
        model.local_head.center.copy_(torch.arange(6.).view(1, 6, 1))
        model.teacher.module.local_neck.mlp[0].weight.add_(1.)
    new_sd = model.state_dict()
    assert 'local_head.center' in new_sd and not any('local_loss' in k for k in new_sd)
    assert new_sd['teacher.module.local_neck.mlp.0.weight'].shape == (8, 512, 1)
    old_sd = {k.replace('local_head.', 'local_loss.'): v for k, v in new_sd.items()}
    torch.manual_seed(1)
    other = MODELS.build(_cmid_cfg(local_head=dict(type='DINOLocalHead', out_channels=6)))
    assert not torch.equal(other.local_head.center, model.local_head.center)
    other.load_state_dict(copy.deepcopy(old_sd), strict=True)
    for k, v in other.state_dict().items():
        assert torch.equal(v, new_sd[k]), k
    # mmengine's loader (runner.resume / load_checkpoint) goes through the same hooks
    from mmengine.runner.checkpoint import load_state_dict
    third = MODELS.build(_cmid_cfg(local_head=dict(type='DINOLocalHead', out_channels=6)))
    load_state_dict(third, copy.deepcopy(old_sd), strict=True)
    assert torch.equal(third.local_head.center, model.local_head.center)


def test_subclass_of_the_old_loss_overriding_forward_is_still_called():
    """Old code extended DINOLocalLoss by overriding forward; CMID now calls head.loss."""
    from cmid_mm.models.losses import DINOLocalLoss

    class Doubled(DINOLocalLoss):

        def forward(self, student, teacher):
            return 2 * super().forward(student, teacher)

    with pytest.warns(DeprecationWarning):
        old = Doubled(out_channels=4)
    new = DINOLocalHead(out_channels=4)
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.equal(old.loss(s, t), 2 * new.loss(s, t))
