import pytest
import torch
import torch.nn as nn
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.utils import WindowMSA

from cmid_mm.models.backbones import CMIDSwinTransformer
from cmid_mm.models.backbones.cmid_swin import UnbindWindowMSA

TINY = dict(arch=dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4]),
            img_size=64, window_size=2)


class ThenMask(nn.Module):
    """Test-side reference: run the patch embedding, then put ``token`` on masked tokens."""

    def __init__(self, inner, token, mask, mode):
        super().__init__()
        self.inner, self.token, self.mode = inner, token, mode
        self.weight = mask.float().reshape(mask.shape[0], -1, 1)

    def forward(self, x):
        y, hw = self.inner(x)
        if self.mode == 'add':
            return y + self.token * self.weight, hw
        return y * (1 - self.weight) + self.token * self.weight, hw


def build_pair(**kwargs):
    """A stock Swin and a CMIDSwinTransformer holding the same weights."""
    kwargs = {**TINY, **kwargs}
    mask_mode = kwargs.pop('mask_mode', 'add')
    torch.manual_seed(0)
    stock = SwinTransformer(**kwargs)
    stock.init_weights()
    cmid = CMIDSwinTransformer(mask_mode=mask_mode, shift_mask_value=-100, **kwargs)
    missing, unexpected = cmid.load_state_dict(stock.state_dict(), strict=False)
    assert missing == ['mask_token'] and unexpected == []
    return stock, cmid


def random_mask(batch, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, size, size, generator=g) < 0.5


def run(model, *args):
    torch.manual_seed(123)
    return model(*args)


@pytest.mark.parametrize('train', [False, True])
def test_unmasked_is_stock_bit_for_bit(train):
    # drop_path_rate and drop_rate make train mode random: same seed, same draws
    stock, cmid = build_pair(out_indices=(0, 1, 2, 3), drop_rate=0.1, drop_path_rate=0.2,
                             use_abs_pos_embed=True)
    stock.train(train)
    cmid.train(train)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x)
    assert isinstance(out, tuple)
    assert [o.shape for o in out] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4),
                                      (2, 128, 2, 2)]
    for e, o in zip(expected, out):
        assert torch.equal(e, o)


def test_unbind_window_attention_gives_stock_outputs_and_gradients_bit_for_bit():
    # UnbindWindowMSA changes how q, k, v are taken (one unbind, not three indexings); the
    # attention dropout (attn_cfgs) checks that its random draws stay in the same order
    stock, cmid = build_pair(out_indices=(0, 1, 2, 3), drop_path_rate=0.2,
                             stage_cfgs=dict(block_cfgs=dict(attn_cfgs=dict(attn_drop=0.1))))
    assert {type(m.attn.w_msa) for m in cmid.modules() if hasattr(m, 'attn')} == \
        {UnbindWindowMSA}
    assert {type(m.attn.w_msa) for m in stock.modules() if hasattr(m, 'attn')} == {WindowMSA}
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (stock, cmid):
        model.train()
        xi = x.clone().requires_grad_()
        out = run(model, xi)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward()
        results.append((out, [xi.grad] + [p.grad for n, p in model.named_parameters()
                                          if n != 'mask_token']))
    (out_s, g_s), (out_c, g_c) = results
    assert all(torch.equal(a, b) for a, b in zip(out_s, out_c))
    assert len(g_s) == len(g_c) == 1 + len(list(stock.parameters()))
    assert all(a is not None and torch.equal(a, b) for a, b in zip(g_s, g_c))


def test_state_dict_is_stock_plus_mask_token():
    stock, cmid = build_pair()
    assert set(cmid.state_dict()) == set(stock.state_dict()) | {'mask_token'}
    assert [n for n, _ in cmid.named_buffers()] == [n for n, _ in stock.named_buffers()]
    assert torch.equal(cmid.mask_token, torch.zeros(1, 1, 16))
    exported = {k: v for k, v in cmid.state_dict().items() if k != 'mask_token'}
    SwinTransformer(**TINY).load_state_dict(exported, strict=True)


@pytest.mark.parametrize('mode', ['add', 'replace'])
def test_masked_forward_is_stock_with_token_after_patch_embed(mode):
    # abs pos embed on: the token must go in before it, as in ThenMask
    stock, cmid = build_pair(mask_mode=mode, use_abs_pos_embed=True, drop_path_rate=0.2)
    stock.train()
    cmid.train()
    with torch.no_grad():
        cmid.mask_token.normal_()
    mask = random_mask(2, 16)
    stock.patch_embed = ThenMask(stock.patch_embed, cmid.mask_token, mask, mode)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x, mask)
    assert torch.equal(expected[0], out[0])


def test_zero_token_add_changes_nothing_nonzero_token_does():
    _, cmid = build_pair()
    cmid.eval()
    x, mask = torch.randn(2, 3, 64, 64), random_mask(2, 16)
    plain = cmid(x)[0]
    assert torch.equal(cmid(x, mask)[0], plain)
    with torch.no_grad():
        cmid.mask_token.fill_(0.5)
    assert not torch.allclose(cmid(x, mask)[0], plain)


def test_replace_with_empty_mask_changes_nothing():
    _, cmid = build_pair(mask_mode='replace')
    cmid.eval()
    with torch.no_grad():
        cmid.mask_token.normal_()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(cmid(x, torch.zeros(2, 16, 16, dtype=torch.bool))[0], cmid(x)[0])


@pytest.mark.parametrize('mode', ['add', 'replace'])
def test_only_masked_tokens_change_at_the_embedding(mode):
    _, cmid = build_pair(mask_mode=mode)
    with torch.no_grad():
        cmid.mask_token.copy_(torch.arange(16.0).view(1, 1, 16))
    tokens, hw = cmid.patch_embed(torch.randn(2, 3, 64, 64))
    assert hw == (16, 16)
    mask = torch.zeros(2, 16, 16, dtype=torch.long)
    mask[0, 2, 5] = 1  # row-major token 2 * 16 + 5 = 37 of image 0
    mask[1, 15, 0] = 1  # token 240 of image 1
    out, out_hw = cmid.mask_tokens(tokens, hw, mask)
    assert out_hw == (16, 16)
    changed = (out != tokens).any(-1)
    assert changed.nonzero().tolist() == [[0, 37], [1, 240]]
    token = torch.arange(16.0)
    for b, i in [(0, 37), (1, 240)]:
        expected = tokens[b, i] + token if mode == 'add' else token
        assert torch.allclose(out[b, i], expected)


def test_bad_mask_shape_raises():
    _, cmid = build_pair()
    with pytest.raises(ValueError, match=r'\(2, 8, 8\).*\(16, 16\).*\(B, 16, 16\)'):
        cmid(torch.randn(2, 3, 64, 64), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match='mask_mode'):
        CMIDSwinTransformer(mask_mode='mean', **TINY)


def test_token_gets_gradient_when_masked():
    _, cmid = build_pair()
    cmid(torch.randn(2, 3, 64, 64), random_mask(2, 16))[0].pow(2).sum().backward()
    assert cmid.mask_token.grad.shape == (1, 1, 16)
    assert cmid.mask_token.grad.abs().sum() > 0


def test_tiny_arch_masked_shape():
    torch.manual_seed(0)
    # the stock window of 7 needs maps of at least 7 x 7: use 2 at 64 px
    cmid = CMIDSwinTransformer(arch='tiny', img_size=64, window_size=2)
    assert cmid.mask_token.shape == (1, 1, 96)
    out = cmid(torch.randn(1, 3, 64, 64), random_mask(1, 16))
    assert len(out) == 1 and out[0].shape == (1, 768, 2, 2)
