import math

import numpy as np
import pytest
import torch

from cmid_mm.models.losses import FocalL1Loss


def _numpy_focal_l1(pred, target, mask, beta=0.2, gamma=1.0, eps=1e-5):
    """Independent reference: loops over pixels and channels."""
    num, den = 0.0, 0.0
    B, N, H, W = pred.shape
    for b in range(B):
        for y in range(H):
            for x in range(W):
                m = float(mask[b, y, x])
                den += m
                for c in range(N):
                    e = abs(float(pred[b, c, y, x]) - float(target[b, c, y, x]))
                    num += m * e * (2 / (1 + math.exp(-beta * e)) - 1)**gamma
    return num / (den + eps) / N


def test_focal_l1_2x1x4x4():
    torch.manual_seed(0)
    pred = torch.randn(2, 1, 4, 4) * 3
    target = torch.randn(2, 1, 4, 4) * 3
    mask = (torch.rand(2, 4, 4) > 0.5).long()
    expected = _numpy_focal_l1(pred.numpy(), target.numpy(), mask.numpy())
    loss = FocalL1Loss()(pred, target, mask.unsqueeze(1))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # (B, H, W) mask gives the same value
    assert FocalL1Loss()(pred, target, mask).item() == pytest.approx(expected, rel=1e-5)
    # other beta / gamma
    loss = FocalL1Loss(beta=0.5, gamma=2.0)(pred, target, mask)
    expected = _numpy_focal_l1(pred.numpy(), target.numpy(), mask.numpy(), beta=0.5, gamma=2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_l1_channels_counted_once_per_pixel():
    # error 2 everywhere, 2 channels, 3 masked pixels: the loss is the per-element value
    # l = 2 * (2 * sigmoid(0.4) - 1) = 2 * tanh(0.2) (eps aside).
    pred = torch.full((1, 2, 2, 2), 2.0)
    target = torch.zeros(1, 2, 2, 2)
    mask = torch.tensor([[[[1, 1], [1, 0]]]])
    loss = FocalL1Loss(eps=0.0)(pred, target, mask)
    assert loss.item() == pytest.approx(2 * math.tanh(0.2), rel=1e-6)
    # unmasked pixels do not count, whatever their error
    pred[0, :, 1, 1] = 100.0
    assert FocalL1Loss(eps=0.0)(pred, target, mask).item() == pytest.approx(
        2 * math.tanh(0.2), rel=1e-6)


def test_focal_l1_empty_mask_and_grad():
    pred = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = FocalL1Loss()(pred, torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(pred.grad) == 0


def test_focal_l1_bad_mask():
    with pytest.raises(ValueError, match='mask'):
        FocalL1Loss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2))


def test_focal_l1_half_precision_inputs_give_float32():
    pred = torch.full((1, 1, 2, 2), 3.0, dtype=torch.bfloat16)
    loss = FocalL1Loss(eps=0.0)(pred, torch.zeros_like(pred), torch.ones(1, 2, 2))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(3 * (2 / (1 + np.exp(-0.6)) - 1), rel=1e-6)
