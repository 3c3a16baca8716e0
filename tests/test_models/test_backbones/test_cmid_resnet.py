import pytest
import torch
import torch.nn as nn
from mmpretrain.models.backbones import ResNet

from cmid_mm.models.backbones import CMIDResNet
from cmid_mm.models.utils.mask_token import apply_mask_token


class ThenMask(nn.Module):
    """Test-side reference: run ``inner`` then put ``token`` on the masked positions."""

    def __init__(self, inner, token, mask, mode):
        super().__init__()
        self.inner, self.token, self.mode = inner, token, mode
        self.weight = mask.float()[:, None]

    def forward(self, x):
        y = self.inner(x)
        if self.mode == 'add':
            return y + self.token * self.weight
        return y * (1 - self.weight) + self.token * self.weight


def build_pair(**kwargs):
    """A stock ResNet and a CMIDResNet holding the same weights."""
    mask_mode = kwargs.pop('mask_mode', 'add')
    torch.manual_seed(0)
    stock = ResNet(**kwargs)
    stock.init_weights()
    cmid = CMIDResNet(mask_mode=mask_mode, **kwargs)
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
@pytest.mark.parametrize('deep_stem', [False, True])
def test_unmasked_is_stock_bit_for_bit(train, deep_stem):
    kwargs = dict(depth=18, out_indices=(0, 1, 2, 3), deep_stem=deep_stem, drop_path_rate=0.1)
    stock, cmid = build_pair(**kwargs)
    stock.train(train)
    cmid.train(train)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x)
    assert isinstance(out, tuple) and len(out) == 4
    assert [o.shape for o in out] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4),
                                      (2, 512, 2, 2)]
    for e, o in zip(expected, out):
        assert torch.equal(e, o)
    cmid_state = cmid.state_dict()
    for name, value in stock.state_dict().items():
        assert torch.equal(value, cmid_state[name]), name  # BN running stats moved alike


def test_state_dict_is_stock_plus_mask_token():
    stock, cmid = build_pair(depth=18)
    assert set(cmid.state_dict()) == set(stock.state_dict()) | {'mask_token'}
    assert [n for n, _ in cmid.named_buffers()] == [n for n, _ in stock.named_buffers()]
    exported = {k: v for k, v in cmid.state_dict().items() if k != 'mask_token'}
    ResNet(depth=18).load_state_dict(exported, strict=True)


def test_mask_token_is_zero_with_stem_width():
    assert torch.equal(CMIDResNet(depth=18).mask_token, torch.zeros(1, 64, 1, 1))
    cmid = CMIDResNet(depth=18, stem_channels=32, deep_stem=True)
    assert cmid.mask_token.shape == (1, 32, 1, 1)
    out = cmid(torch.randn(1, 3, 64, 64), torch.ones(1, 16, 16))
    assert out[0].shape == (1, 512, 2, 2)


@pytest.mark.parametrize('mode', ['add', 'replace'])
def test_masked_forward_is_stock_with_token_after_maxpool(mode):
    stock, cmid = build_pair(depth=18, out_indices=(1, 3), deep_stem=mode == 'replace')
    cmid.mask_mode = mode
    stock.train()
    cmid.train()
    with torch.no_grad():
        cmid.mask_token.normal_()
    mask = random_mask(2, 16)
    stock.maxpool = ThenMask(stock.maxpool, cmid.mask_token, mask, mode)
    x = torch.randn(2, 3, 64, 64)
    expected, out = run(stock, x), run(cmid, x, mask)
    assert len(out) == 2
    for e, o in zip(expected, out):
        assert torch.equal(e, o)


def test_zero_token_add_changes_nothing_nonzero_token_does():
    _, cmid = build_pair(depth=18)
    cmid.eval()
    x, mask = torch.randn(2, 3, 64, 64), random_mask(2, 16)
    plain = cmid(x)[0]
    assert torch.equal(cmid(x, mask)[0], plain)
    with torch.no_grad():
        cmid.mask_token.fill_(0.5)
    assert not torch.allclose(cmid(x, mask)[0], plain)


def test_replace_with_empty_mask_changes_nothing():
    _, cmid = build_pair(depth=18, mask_mode='replace')
    cmid.eval()
    with torch.no_grad():
        cmid.mask_token.normal_()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(cmid(x, torch.zeros(2, 16, 16))[0], cmid(x)[0])
    assert not torch.allclose(cmid(x, torch.ones(2, 16, 16))[0], cmid(x)[0])


def test_mask_dtypes_agree():
    _, cmid = build_pair(depth=18)
    cmid.eval()
    with torch.no_grad():
        cmid.mask_token.normal_()
    x, mask = torch.randn(2, 3, 64, 64), random_mask(2, 16)
    out = cmid(x, mask)[0]
    assert torch.equal(cmid(x, mask.long())[0], out)
    assert torch.equal(cmid(x, mask.float())[0], out)


def test_mask_stem_is_local_with_hand_values():
    cmid = CMIDResNet(depth=18, stem_channels=2, base_channels=2)
    with torch.no_grad():
        cmid.mask_token.copy_(torch.tensor([1.5, -2.0]).view(1, 2, 1, 1))
    stem = torch.arange(2 * 2 * 2 * 3, dtype=torch.float32).view(2, 2, 2, 3)
    mask = torch.zeros(2, 2, 3)
    mask[0, 1, 2] = 1
    mask[1, 0, 0] = 1
    expected = stem.clone()
    expected[0, :, 1, 2] = torch.tensor([5.0 + 1.5, 11.0 - 2.0])
    expected[1, :, 0, 0] = torch.tensor([12.0 + 1.5, 18.0 - 2.0])
    assert torch.equal(cmid.mask_stem(stem, mask), expected)
    cmid.mask_mode = 'replace'
    expected[0, :, 1, 2] = torch.tensor([1.5, -2.0])
    expected[1, :, 0, 0] = torch.tensor([1.5, -2.0])
    assert torch.equal(cmid.mask_stem(stem, mask), expected)


def test_apply_mask_token_blends_soft_masks():
    x = torch.tensor([[[2.0, 4.0]]])  # (B=1, L=1, C=2)
    token = torch.tensor([[[10.0, 20.0]]])
    mask = torch.tensor([[0.25]])
    assert torch.equal(apply_mask_token(x, token, mask, 'add'), torch.tensor([[[4.5, 9.0]]]))
    assert torch.equal(apply_mask_token(x, token, mask, 'replace'),
                       torch.tensor([[[0.75 * 2 + 2.5, 0.75 * 4 + 5.0]]]))
    with pytest.raises(ValueError, match=r'\(1, 2\).*\(1, 1, 2\).*\(1, 1\)'):
        apply_mask_token(x, token, torch.zeros(1, 2), 'add')


def test_bad_mask_shape_and_mode_raise():
    stock, cmid = build_pair(depth=18)
    stock.eval()
    cmid.eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r'\(2, 8, 8\).*\(2, 64, 16, 16\).*\(2, 16, 16\)'):
        cmid(x, torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r'\(1, 16, 16\)'):
        cmid(x, torch.zeros(1, 16, 16))
    # the failed calls left no hook behind
    assert not cmid.maxpool._forward_hooks
    assert torch.equal(cmid(x)[0], stock(x)[0])
    with pytest.raises(ValueError, match="mask_mode='swap'"):
        CMIDResNet(depth=18, mask_mode='swap')


def test_token_gets_gradient_only_where_masked():
    _, cmid = build_pair(depth=18)
    x = torch.randn(2, 3, 64, 64)
    cmid(x, torch.zeros(2, 16, 16))[0].sum().backward()
    assert torch.equal(cmid.mask_token.grad, torch.zeros(1, 64, 1, 1))
    cmid.zero_grad()
    cmid(x, random_mask(2, 16))[0].pow(2).sum().backward()
    assert cmid.mask_token.grad.abs().sum() > 0


def test_resnet50_masked_shape():
    torch.manual_seed(0)
    cmid = CMIDResNet(depth=50)
    out = cmid(torch.randn(2, 3, 64, 64), random_mask(2, 16))
    assert len(out) == 1 and out[0].shape == (2, 2048, 2, 2)
