"""CMIDSwinTransformer's shifted-window masks: -1e4 where mmpretrain's hold -100, so that the
softmax gives masked keys a weight of exactly 0 instead of a subnormal float32 (~e^-100),
which x86 CPUs multiply in microcode (3-4x slower batched products)."""
import copy

import pytest
import torch
from mmpretrain.models.utils import ShiftWindowMSA

from cmid_mm.models.backbones import CMIDSwinTransformer
from cmid_mm.models.backbones.cmid_swin import shift_window_mask

TINY = dict(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
            img_size=64, window_size=2, drop_path_rate=0.0)
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def test_mask_is_mmpretrains_with_the_value_replaced():
    stock = ShiftWindowMSA.get_attn_mask((8, 8), window_size=4, shift_size=2)
    ours = shift_window_mask((8, 8), window_size=4, shift_size=2)
    assert stock.shape == ours.shape == (4, 16, 16)
    assert set(stock.unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(ours == -1e4, stock == -100) and torch.equal(ours == 0, stock == 0)
    assert shift_window_mask((8, 8), window_size=4, shift_size=0) is None


def _shifted_blocks(model):
    return [m for m in model.modules() if isinstance(m, ShiftWindowMSA) and m.shift_size > 0]


def _softmax_outputs(model, x):
    """The attention weights of every shifted block in one forward pass."""
    seen = []
    hooks = [m.w_msa.softmax.register_forward_hook(lambda mod, a, out: seen.append(out))
             for m in _shifted_blocks(model)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def test_every_shifted_block_uses_it_also_in_a_copy():
    model = CMIDSwinTransformer(**TINY)
    blocks = [m for m in model.modules() if isinstance(m, ShiftWindowMSA)]
    assert len(blocks) == 8 and len(_shifted_blocks(model)) == 4
    for m in blocks + [m for m in copy.deepcopy(model).modules()
                       if isinstance(m, ShiftWindowMSA)]:  # the EMA teacher is a deepcopy
        mask = m.get_attn_mask((4, 4), window_size=2, shift_size=1)
        assert set(mask.unique().tolist()) == {-1e4, 0.0}
    stock = CMIDSwinTransformer(shift_mask_value=-100, **TINY)
    assert all('get_attn_mask' not in vars(m) for m in stock.modules())


def test_masked_keys_get_zero_weight_not_a_subnormal():
    torch.manual_seed(0)
    model = CMIDSwinTransformer(**TINY)
    stock = CMIDSwinTransformer(shift_mask_value=-100, **TINY)
    stock.load_state_dict(model.state_dict())
    model.eval()
    stock.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = _softmax_outputs(model, x), _softmax_outputs(stock, x)
    assert len(ours) == len(theirs) == 4
    with_subnormals = 0
    for a, b in zip(ours, theirs):
        subnormal = (b > 0) & (b < SMALLEST_NORMAL)
        with_subnormals += bool(subnormal.any())  # what mmpretrain's -100 produces ...
        assert not ((a > 0) & (a < SMALLEST_NORMAL)).any()  # ... and ours does not
        assert (a[subnormal] == 0).all()
    # the last stage is a single window, where mmpretrain shifts nothing and masks nothing
    assert with_subnormals == 3


def test_outputs_and_gradients_within_float32_rounding_of_mmpretrain_masks():
    torch.manual_seed(0)
    model = CMIDSwinTransformer(out_indices=(0, 1, 2, 3), **TINY)
    stock = CMIDSwinTransformer(shift_mask_value=-100, out_indices=(0, 1, 2, 3), **TINY)
    stock.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    results = []
    for m in (model, stock):
        outs = m(x)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        results.append(([o.detach() for o in outs], grads))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    # weights of < 4e-44 change nothing float32 can resolve at these magnitudes
    assert (grads_a - grads_b).norm() <= 1e-6 * grads_b.norm()


def test_value_above_minus_100_is_refused():
    with pytest.raises(ValueError, match=r'shift_mask_value must be <= -100.*-50'):
        CMIDSwinTransformer(shift_mask_value=-50, **TINY)
