"""Resuming a checkpoint of cmid_mm < 0.3: its optimizer states of the MIM decoder and the
local neck have the 1x1-convolution shapes of those parameters then."""
import copy

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from tests.test_models.test_selfsup.test_cmid import CONFIGS, _batch, _setup_hub


def _wrapper(model, optimizer):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='CMIDOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=optimizer)))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return constructor(model)


def _conv_layout(optim_state, model_sd_shapes, names):
    """The optimizer state as cmid_mm < 0.3 saved it: states shaped like the parameters'
    checkpoint (Conv) layout."""
    old = copy.deepcopy(optim_state)
    for pid, name in names.items():
        for key, value in old['state'].get(pid, {}).items():
            if torch.is_tensor(value) and value.dim() == 2:
                old['state'][pid][key] = value.reshape(model_sd_shapes[name])
    return old


@pytest.mark.parametrize('optimizer', [dict(type='AdamW', lr=1e-3),
                                       dict(type='SGD', lr=0.1, momentum=0.9)])
def test_old_layout_optimizer_state_resumes_and_continues_identically(optimizer):
    _setup_hub()
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS['swin']))
    wrapper = _wrapper(model, optimizer)
    views, samples = _batch(batch_size=2)
    wrapper.update_params(sum(model.loss(views, samples).values()))
    state = wrapper.state_dict()
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    by_id = {id(p): n for n, p in model.named_parameters()}
    names = {i: by_id[id(p)] for i, p in enumerate(params)}
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    old = _conv_layout(state, shapes, names)
    key = 'exp_avg' if optimizer['type'] == 'AdamW' else 'momentum_buffer'
    assert old['state'][_index(names, 'mim_head.decoder.0.weight')][key].dim() == 4
    assert old['state'][_index(names, 'local_neck.mlp.0.weight')][key].dim() == 3

    runs = []
    for saved in (state, old):
        twin = copy.deepcopy(model)
        w = _wrapper(twin, optimizer)
        w.load_state_dict(copy.deepcopy(saved))
        torch.manual_seed(1)
        w.update_params(sum(twin.loss(views, samples).values()))
        runs.append({k: v.clone() for k, v in twin.state_dict().items()})
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def _index(names, name):
    return next(i for i, n in names.items() if n == name)
