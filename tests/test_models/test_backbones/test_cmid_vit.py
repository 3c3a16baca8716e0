import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.models.backbones import VisionTransformer

from cmid_mm.models.backbones import CMIDVisionTransformer

SMALL = dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
             img_size=64)


class ThenMask(nn.Module):
    """Test-side reference: run the patch embedding, then put ``token`` on masked patches.

    ``patch_mask`` is already at the patch grid (B, h, w).
    """

    def __init__(self, inner, token, patch_mask, mode):
        super().__init__()
        self.inner, self.token, self.mode = inner, token, mode
        self.weight = patch_mask.float().reshape(patch_mask.shape[0], -1, 1)

    def forward(self, x):
        y, hw = self.inner(x)
        if self.mode == 'add':
            return y + self.token * self.weight, hw
        return y * (1 - self.weight) + self.token * self.weight, hw


def pool_by_loops(mask, k):
    """Independent any-pixel pooling of a (B, h, w) numpy mask by k x k cells."""
    b, h, w = mask.shape
    out = np.zeros((b, h // k, w // k), dtype=np.float32)
    for n in range(b):
        for i in range(h // k):
            for j in range(w // k):
                out[n, i, j] = float(mask[n, i * k:(i + 1) * k, j * k:(j + 1) * k].any())
    return out


def build_pair(**kwargs):
    """A stock ViT (featmap output) and a CMIDVisionTransformer holding the same weights."""
    kwargs = {**SMALL, **kwargs}
    mask_mode = kwargs.pop('mask_mode', 'add')
    torch.manual_seed(0)
    stock = VisionTransformer(out_type='featmap', **kwargs)
    stock.init_weights()
    cmid = CMIDVisionTransformer(mask_mode=mask_mode, **kwargs)
    missing, unexpected = cmid.load_state_dict(stock.state_dict(), strict=False)
    assert missing == ['mask_token'] and unexpected == []
    return stock, cmid


def random_mask(batch, size, seed=1, p=0.2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, size, size, generator=g) < p


def run(model, *args):
    torch.manual_seed(123)
    return model(*args)


@pytest.mark.parametrize('train', [False, True])
def test_unmasked_is_stock_bit_for_bit(train):
    stock, cmid = build_pair(out_indices=[0, 1], drop_rate=0.1, drop_path_rate=0.2)
    stock.train(train)
    cmid.train(train)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[1].shape == (2, 64, 4, 4)
    for e, o in zip(expected, out):
        assert torch.equal(e, o)


def test_default_out_type_is_featmap_and_other_types_pass_through():
    assert CMIDVisionTransformer(**SMALL).out_type == 'featmap'
    cmid = CMIDVisionTransformer(out_type='cls_token', **SMALL)
    assert cmid(torch.randn(2, 3, 64, 64), random_mask(2, 16))[0].shape == (2, 64)


def test_state_dict_is_stock_plus_mask_token():
    stock, cmid = build_pair()
    assert set(cmid.state_dict()) == set(stock.state_dict()) | {'mask_token'}
    assert [n for n, _ in cmid.named_buffers()] == [n for n, _ in stock.named_buffers()]
    assert torch.equal(cmid.mask_token, torch.zeros(1, 1, 64))
    exported = {k: v for k, v in cmid.state_dict().items() if k != 'mask_token'}
    VisionTransformer(**SMALL).load_state_dict(exported, strict=True)


def test_patch_mask_hand_computed():
    _, cmid = build_pair()  # patch 16: 4 x 4 stride-4 cells per patch
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[0, 5, 9] = True  # row 5 // 4 = 1, column 9 // 4 = 2
    mask[0, 6, 10] = True  # same patch
    mask[0, 15, 0] = True  # patch (3, 0)
    mask[1, 3, 3] = True  # patch (0, 0)
    mask[1, 4, 4] = True  # patch (1, 1)
    expected = torch.zeros(2, 4, 4)
    expected[0, 1, 2] = expected[0, 3, 0] = expected[1, 0, 0] = expected[1, 1, 1] = 1
    assert torch.equal(cmid.patch_mask(mask), expected)


@pytest.mark.parametrize('patch_size', [4, 8, 16])
def test_patch_mask_matches_loops(patch_size):
    cmid = CMIDVisionTransformer(patch_size=patch_size, **SMALL)
    mask = random_mask(3, 16, p=0.05)
    expected = pool_by_loops(mask.numpy(), patch_size // 4)
    assert np.array_equal(cmid.patch_mask(mask.long()).numpy(), expected)


@pytest.mark.parametrize('mode', ['add', 'replace'])
def test_masked_forward_is_stock_with_token_after_patch_embed(mode):
    # the token goes in before the cls token and the position embedding, as in ThenMask
    stock, cmid = build_pair(mask_mode=mode, drop_path_rate=0.2)
    stock.train()
    cmid.train()
    with torch.no_grad():
        cmid.mask_token.normal_()
    mask = random_mask(2, 16)
    patch_mask = torch.from_numpy(pool_by_loops(mask.numpy(), 4))
    stock.patch_embed = ThenMask(stock.patch_embed, cmid.mask_token, patch_mask, mode)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x, mask)
    assert torch.equal(expected[0], out[0])


def test_other_input_size_uses_pos_embed_interpolation():
    stock, cmid = build_pair()
    stock.eval()
    cmid.eval()
    x = torch.randn(2, 3, 96, 96)
    assert torch.equal(cmid(x)[0], stock(x)[0])
    with torch.no_grad():
        cmid.mask_token.normal_()
    mask = random_mask(2, 24)
    stock.patch_embed = ThenMask(stock.patch_embed, cmid.mask_token,
                                 torch.from_numpy(pool_by_loops(mask.numpy(), 4)), 'add')
    out = cmid(x, mask)[0]
    assert out.shape == (2, 64, 6, 6)
    assert torch.equal(out, stock(x)[0])


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
    assert torch.equal(cmid(x, torch.zeros(2, 16, 16))[0], cmid(x)[0])


@pytest.mark.parametrize('mode', ['add', 'replace'])
def test_only_masked_patches_change_at_the_embedding(mode):
    _, cmid = build_pair(mask_mode=mode)
    with torch.no_grad():
        cmid.mask_token.copy_(torch.linspace(-1, 1, 64).view(1, 1, 64))
    tokens, grid = cmid.patch_embed(torch.randn(2, 3, 64, 64))
    mask = torch.zeros(2, 16, 16)
    mask[0, 5, 9] = 1  # patch (1, 2) -> token 1 * 4 + 2 = 6
    mask[1, 12, 3] = 1  # patch (3, 0) -> token 12
    out, out_grid = cmid.mask_tokens(tokens, grid, mask)
    assert out_grid == (4, 4)
    changed = (out != tokens).any(-1)
    assert changed.nonzero().tolist() == [[0, 6], [1, 12]]
    token = torch.linspace(-1, 1, 64)
    for b, i in [(0, 6), (1, 12)]:
        expected = tokens[b, i] + token if mode == 'add' else token
        assert torch.allclose(out[b, i], expected)


def test_bad_shapes_raise():
    _, cmid = build_pair()
    with pytest.raises(ValueError, match=r'\(2, 4, 4\).*\(4, 4\).*\(B, 16, 16\)'):
        cmid(torch.randn(2, 3, 64, 64), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r'stride \(6, 6\)'):
        CMIDVisionTransformer(patch_size=6, **SMALL)


def test_token_gets_gradient_when_masked():
    _, cmid = build_pair()
    cmid(torch.randn(2, 3, 64, 64), random_mask(2, 16))[0].pow(2).sum().backward()
    assert cmid.mask_token.grad.shape == (1, 1, 64)
    assert cmid.mask_token.grad.abs().sum() > 0


def test_base_arch_masked_shape():
    torch.manual_seed(0)
    cmid = CMIDVisionTransformer(arch='b', img_size=64)
    with torch.no_grad():
        out = cmid(torch.randn(1, 3, 64, 64), random_mask(1, 16))
    assert len(out) == 1 and out[0].shape == (1, 768, 4, 4)


def test_mask_stride_comes_from_the_config():
    """mask_stride = token_stride of BlockMaskGenerator: a stride-8 mask on a stride-8 backbone
    masks the same patches as the same mask written at stride 4 on a stride-4 backbone."""
    _, cmid4 = build_pair()
    cmid8 = CMIDVisionTransformer(mask_stride=8, **SMALL)
    cmid8.load_state_dict(cmid4.state_dict(), strict=True)
    with torch.no_grad():
        cmid4.mask_token.normal_()
        cmid8.mask_token.copy_(cmid4.mask_token)
    assert cmid8.cells_per_patch == (2, 2)
    mask8 = random_mask(2, 8, p=0.4)
    mask4 = mask8.repeat_interleave(2, 1).repeat_interleave(2, 2)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(run(cmid8, x, mask8)[0], run(cmid4, x, mask4)[0])
    assert not torch.equal(run(cmid8, x, mask8)[0], run(cmid8, x)[0])


def test_mask_of_another_stride_names_both_settings():
    _, cmid4 = build_pair()
    with pytest.raises(ValueError, match=r'\(2, 8, 8\) \(a 8 px mask grid\).*mask_stride=4 px.*'
                                         r'token_stride of BlockMaskGenerator'):
        cmid4(torch.randn(2, 3, 64, 64), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r'stride \(16, 16\) but mask_stride=3'):
        CMIDVisionTransformer(mask_stride=3, **SMALL)
    with pytest.raises(ValueError, match='mask_stride must be a positive int'):
        CMIDVisionTransformer(mask_stride=0, **SMALL)
