"""ChunkedAdan: mmpretrain's Adan (foreach) computed slice by slice, equal bit for bit.

Element-wise kernels compute each element alone, so slicing cannot change a value as long as
every element sees the same operations with the same scalars; these tests hold the claim to
``torch.equal`` over several steps, for tensors spanning many slices, sizes that are not
multiples of the vector width, and 1 and 2 threads (2 threads split the larger slices).
"""
import copy

import pytest
import torch
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import init_default_scope
from mmpretrain.engine.optimizers import Adan
from torch import nn

from cmid_mm.engine.optimizers import ChunkedAdan, CMIDOptimWrapperConstructor

SHAPES = [(7, ), (64, ), (300, 37), (5, 3, 3, 3), (1000, ), (40000, ), (100003, )]


def _groups(params):
    """Two groups with different hyper-parameters, like the recipe's decay / no-decay."""
    return [dict(params=params[::2]), dict(params=params[1::2], weight_decay=0.0, lr=1e-3)]


def _run(cls, steps=3, **kwargs):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in SHAPES]
    # a channels-last convolution weight (CMID's ResNet), its gradients in the same layout
    params.append(torch.randn(6, 5, 3, 3, generator=gen).contiguous(
        memory_format=torch.channels_last).requires_grad_())
    opt = cls(_groups(params), lr=4e-3, betas=(0.98, 0.92, 0.99), eps=1e-8,
              weight_decay=0.02, **kwargs)
    for _ in range(steps):
        for p in params:
            p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).contiguous(
                memory_format=torch.channels_last if p.dim() == 4 and not p.is_contiguous()
                else torch.contiguous_format)
        opt.step()
    return params, opt


def _assert_same(params_a, opt_a, params_b, opt_b):
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        assert torch.equal(a, b), f'parameter {i} {tuple(a.shape)}'
        for key in ('exp_avg', 'exp_avg_sq', 'exp_avg_diff', 'pre_grad'):
            assert torch.equal(opt_a.state[a][key], opt_b.state[b][key]), (i, key)
    assert [g['step'] for g in opt_a.param_groups] == [g['step'] for g in opt_b.param_groups]


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('chunk_size', [64, 192, 2**16])
def test_equal_to_mmpretrain_adan_bit_for_bit(threads, chunk_size):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref = _run(Adan)
        new = _run(ChunkedAdan, chunk_size=chunk_size)
    finally:
        torch.set_num_threads(before)
    _assert_same(*ref, *new)
    # and the steps did something: every parameter left its start value
    start, _ = _run(Adan, steps=0)
    assert not any(torch.equal(a, b) for a, b in zip(start, new[0]))


def test_state_dicts_interchange_with_adan():
    """A checkpoint of Adan resumes in ChunkedAdan (and back) with the same numbers."""
    params_ref, ref = _run(Adan, steps=2)
    params_new, new = _run(ChunkedAdan, steps=2, chunk_size=128)
    sd_ref, sd_new = ref.state_dict(), new.state_dict()
    assert sd_ref['param_groups'] == sd_new['param_groups']
    assert sd_ref['state'].keys() == sd_new['state'].keys()
    # continue: Adan's state loaded into a ChunkedAdan, one more step each
    cont = ChunkedAdan(_groups([p.detach().clone().requires_grad_() for p in params_ref]),
                       lr=4e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.02,
                       chunk_size=128)
    # as from a checkpoint file: own tensors, here in the default layout also for the
    # channels-last weight (a checkpoint written before CMID used channels-last)
    loaded = copy.deepcopy(sd_ref)
    loaded['state'] = {i: {k: v.contiguous() if torch.is_tensor(v) else v
                           for k, v in st.items()} for i, st in loaded['state'].items()}
    cont.load_state_dict(loaded)
    params_cont = [p for g in cont.param_groups for p in g['params']]
    gen = torch.Generator().manual_seed(5)
    grads = [torch.randn(p.shape, generator=gen) for p in params_ref]
    # group order: params[::2] then params[1::2]
    order = list(range(0, len(params_ref), 2)) + list(range(1, len(params_ref), 2))
    for i, p in zip(order, params_cont):
        p.grad = grads[i].clone()
    for p, g in zip(params_ref, grads):
        p.grad = g.clone()
    ref.step()
    cont.step()
    for i, p in zip(order, params_cont):
        assert torch.equal(p, params_ref[i]), i


def test_constructor_builds_chunked_adan_with_adans_groups():
    init_default_scope('mmpretrain')  # where 'Adan' is registered, as in the configs
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4))
    cfg = dict(optimizer=dict(type='Adan', lr=4e-3, weight_decay=0.02),
               paramwise_cfg=dict(flat_decay_mult=0.0))
    ours = CMIDOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(cfg['optimizer'])), cfg['paramwise_cfg'])(model)
    stock = DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(cfg['optimizer'])), cfg['paramwise_cfg'])(model)
    assert type(ours.optimizer) is ChunkedAdan and type(stock.optimizer) is Adan
    strip = [{k: v for k, v in g.items() if k != 'params'} for g in stock.param_groups]
    assert [{k: v for k, v in g.items() if k != 'params'} for g in ours.param_groups] == strip
    assert [g['params'] for g in ours.param_groups] == [g['params'] for g in stock.param_groups]
    # other optimizers are left alone
    sgd = CMIDOptimWrapperConstructor(dict(type='OptimWrapper',
                                           optimizer=dict(type='SGD', lr=0.1)))(model)
    assert type(sgd.optimizer) is torch.optim.SGD


@pytest.mark.parametrize('bad', [0, 100, -64])
def test_chunk_size_must_be_a_multiple_of_64(bad):
    with pytest.raises(ValueError, match=f'chunk_size must be a positive multiple of 64; '
                                         f'got {bad}'):
        ChunkedAdan([torch.zeros(3, requires_grad=True)], chunk_size=bad)


def test_grad_clipping_and_single_tensor_modes_fall_back_to_adan():
    for kwargs in (dict(max_grad_norm=0.01), dict(foreach=False)):
        _assert_same(*_run(Adan, **kwargs), *_run(ChunkedAdan, chunk_size=64, **kwargs))
