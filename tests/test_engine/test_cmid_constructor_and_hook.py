"""CMIDOptimWrapperConstructor and TeacherTempWarmupHook."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from tests.test_models.test_selfsup.test_cmid import CONFIGS


def test_constructor_skips_teacher_and_applies_decay_rules():
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='CMIDOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='Adan', lr=1e-3, weight_decay=0.02)),
        paramwise_cfg=dict(flat_decay_mult=0.0,
                           custom_keys={'mask_token': dict(decay_mult=0.0)})))
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # Adan lives in mmpretrain
        optim = constructor(model).optimizer
    in_optim = {id(p) for g in optim.param_groups for p in g['params']}
    trainable = [p for n, p in model.named_parameters()
                 if p.requires_grad and not n.startswith('teacher.')]
    assert in_optim == {id(p) for p in trainable}
    assert not in_optim & {id(p) for p in model.teacher.parameters()}
    decay = {id(p): g['weight_decay'] for g in optim.param_groups for p in g['params']}
    named = dict(model.named_parameters())
    assert decay[id(named['backbone.mask_token'])] == 0.0
    assert decay[id(named['backbone.bn1.weight'])] == 0.0  # 1-D: norm
    assert decay[id(named['mim_head.decoder.0.bias'])] == 0.0  # 1-D: bias
    assert decay[id(named['backbone.conv1.weight'])] == 0.02
    assert decay[id(named['global_neck.mlp.0.weight'])] == 0.02


@pytest.mark.parametrize('by_epoch,epoch,it,expected', [
    (True, 0, 0, 0.04), (True, 25, 999, 0.055), (True, 60, 0, 0.07),
    (False, 0, 250, 0.055),  # 250 iters / 10 per epoch = epoch 25.0
])
def test_teacher_temp_hook(by_epoch, epoch, it, expected):
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    runner = SimpleNamespace(model=model, epoch=epoch, iter=it, train_dataloader=range(10))
    HOOKS.build(dict(type='TeacherTempWarmupHook', by_epoch=by_epoch)).before_train_iter(
        runner, 0)
    assert model.local_head.cur_teacher_temp == pytest.approx(expected)


def test_teacher_temp_hook_needs_cmid():
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1), epoch=0, iter=0, train_dataloader=[])
    with pytest.raises(AttributeError, match='needs a model with `local_head`'):
        HOOKS.build(dict(type='TeacherTempWarmupHook')).before_train_iter(runner, 0)
