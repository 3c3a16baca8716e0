import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import nn

from cmid_mm.models.heads import CMIDMIMHead
from cmid_mm.models.losses import FocalFrequencyLoss, FocalL1Loss


def _head(**kwargs):
    return MODELS.build(dict(type='CMIDMIMHead', in_channels=8, encoder_stride=4, in_chans=3,
                             **kwargs))


def test_decoder_layout():
    head = _head()
    assert isinstance(head, CMIDMIMHead)
    linear, shuffle = head.decoder
    assert isinstance(linear, nn.Linear) and linear.in_features == 8
    assert linear.out_features == 4 * 4 * 3
    assert head.state_dict()['decoder.0.weight'].shape == (48, 8, 1, 1)  # Conv2d layout
    assert isinstance(shuffle, nn.PixelShuffle) and shuffle.upscale_factor == 4
    # Constant linear output = its bias: channel c * 16 + i * 4 + j goes to pixel (i, j) of
    # every 4x4 block of output channel c.
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.arange(48.))
    out = head(torch.randn(2, 8, 2, 3))
    assert out.shape == (2, 3, 8, 12)
    block = torch.arange(48.).view(3, 4, 4)
    assert torch.equal(out[1, :, 4:8, 8:12], block)
    assert torch.equal(out[0, :, 0:4, 0:4], block)


def test_forward_equals_conv_and_pixel_shuffle():
    """forward() runs the Linear on the cells: the output and gradients of a 1x1 Conv2d with
    the checkpoint's (Conv2d-layout) weights followed by the pixel shuffle."""
    torch.manual_seed(0)
    head = _head()
    sd = head.state_dict()
    weight = sd['decoder.0.weight'].clone().requires_grad_()
    feat = torch.randn(2, 8, 3, 5, requires_grad=True)
    feat_ref = feat.detach().clone().requires_grad_()
    out = head(feat)
    ref = F.pixel_shuffle(F.conv2d(feat_ref, weight, sd['decoder.0.bias']), 4)
    assert out.shape == ref.shape == (2, 3, 12, 20)
    assert torch.allclose(out, ref, atol=1e-6)
    w = torch.randn_like(ref)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(feat.grad, feat_ref.grad, atol=1e-5)
    assert torch.allclose(head.decoder[0].weight.grad, weight.grad.flatten(1), atol=1e-5)


@pytest.mark.parametrize('grid', [2, 4, 8])
def test_loss_upsamples_mask_from_any_dividing_grid(grid):
    torch.manual_seed(0)
    head = _head()
    feat = torch.randn(2, 8, 2, 2, requires_grad=True)
    target = torch.randn(2, 3, 8, 8)
    mask = (torch.rand(2, grid, grid) > 0.4).long()
    losses = head.loss(feat, target, mask)
    assert set(losses) == {'loss_spatial', 'loss_freq'}

    rep = 8 // grid
    pixel_mask = torch.from_numpy(np.kron(mask.numpy(), np.ones((1, rep, rep))))[:, None]
    pred = head(feat)
    assert torch.allclose(losses['loss_spatial'], FocalL1Loss()(pred, target, pixel_mask))
    assert torch.allclose(losses['loss_freq'], FocalFrequencyLoss()(pred, target, pixel_mask))

    sum(losses.values()).backward()
    assert head.decoder[0].weight.grad.abs().sum() > 0
    assert feat.grad.abs().sum() > 0


def test_loss_configs_are_used():
    head = _head(loss_freq=dict(type='FocalFrequencyLoss', loss_weight=0.0))
    losses = head.loss(torch.randn(1, 8, 2, 2), torch.randn(1, 3, 8, 8), torch.ones(1, 2, 2))
    assert losses['loss_freq'].item() == 0.0
    assert losses['loss_spatial'].item() > 0


def test_loss_errors():
    head = _head()
    with pytest.raises(ValueError, match='encoder_stride'):
        head.loss(torch.randn(1, 8, 2, 2), torch.randn(1, 3, 16, 16), torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match='divide'):
        head.loss(torch.randn(1, 8, 2, 2), torch.randn(1, 3, 8, 8), torch.ones(1, 3, 3))
