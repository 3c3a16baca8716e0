import numpy as np
import pytest
import torch

from cmid_mm.models.losses import FocalFrequencyLoss


def _dft(n):
    k = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(k, k) / n) / np.sqrt(n)


def _numpy_ffl(pred, target, mask, loss_weight=1.0, alpha=1.0, blend=0.001):
    """Independent reference with explicit DFT matrices (no FFT library)."""
    pred, target = pred.astype(np.float64), target.astype(np.float64)
    m = mask.astype(np.float64)[:, None]  # (B, 1, H, W)
    m_f = m + blend * (1 - m)
    x_rep = 0.5 * pred + 0.5 * target
    pred = pred * m_f + x_rep * (1 - m_f)
    H, W = pred.shape[-2:]
    fh, fw = _dft(H), _dft(W)
    spec_p = np.einsum('hy,bcyx,wx->bchw', fh, pred, fw).mean(0)
    spec_t = np.einsum('hy,bcyx,wx->bchw', fh, target, fw).mean(0)
    d = np.abs(spec_p - spec_t)**2
    w = np.log(np.sqrt(d)**alpha + 1)  # FFL: weight |F_r - F_f|^alpha, then log(w + 1)
    w = np.clip(np.nan_to_num(w / w.max()), 0, 1)
    return (w * d).mean() * loss_weight, w


def _example():
    torch.manual_seed(0)
    pred = torch.randn(2, 1, 4, 4)
    target = torch.randn(2, 1, 4, 4)
    mask = (torch.rand(2, 4, 4) > 0.5).long()
    return pred, target, mask


@pytest.mark.parametrize('loss_weight,alpha', [(1.0, 1.0), (0.5, 2.0)])
def test_ffl_2x1x4x4(loss_weight, alpha):
    pred, target, mask = _example()
    expected, _ = _numpy_ffl(pred.numpy(), target.numpy(), mask.numpy(), loss_weight, alpha)
    loss = FocalFrequencyLoss(loss_weight=loss_weight, alpha=alpha)(pred, target,
                                                                     mask.unsqueeze(1))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # (B, H, W) mask form
    assert FocalFrequencyLoss(loss_weight=loss_weight, alpha=alpha)(
        pred, target, mask).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('alpha,expected', [
    (1.0, (9 + np.log(2) / np.log(4)) / 2),
    (2.0, (9 + np.log(2) / np.log(10)) / 2),
])
def test_ffl_alpha_by_hand(alpha, expected):
    """One 1x2 image, everything masked (the blend keeps pred), target 0.

    pred = [2*sqrt(2), sqrt(2)]: the orthonormal 2-point DFT gives (a + b) / sqrt(2) = 3 and
    (a - b) / sqrt(2) = 1, so |F_r - F_f| = [3, 1] and d = [9, 1]. Weight before the max
    normalisation: log(|F_r - F_f| ** alpha + 1) = [log 4, log 2] at alpha 1, [log 10, log 2]
    at alpha 2; after it [1, log 2 / log 4 = 0.5] and [1, log 2 / log 10 = 0.30103]. The loss
    is mean(w * d). (The former log(|.| + 1) ** alpha gave [1, 0.25] at alpha 2: 4.625.)
    """
    pred = torch.tensor([[[[2 * np.sqrt(2), np.sqrt(2)]]]], dtype=torch.float64)
    target = torch.zeros_like(pred)
    mask = torch.ones(1, 1, 2, dtype=torch.long)
    loss = FocalFrequencyLoss(alpha=alpha)(pred, target, mask)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_ffl_gradient_with_detached_weight_and_blend():
    """The gradient is that of mean(w * d) with w constant and x_rep constant."""
    pred, target, mask = _example()
    _, w = _numpy_ffl(pred.numpy(), target.numpy(), mask.numpy())
    pred_a = pred.clone().requires_grad_(True)
    FocalFrequencyLoss()(pred_a, target, mask).backward()

    # Independent torch formulation: explicit complex DFT matmuls, constant w and x_rep.
    p = pred.double().clone().requires_grad_(True)
    t = target.double()
    m = mask.double()[:, None]
    m_f = m + 0.001 * (1 - m)
    x_rep = (0.5 * pred.double() + 0.5 * t)  # built from a non-grad copy of pred
    blended = p * m_f + x_rep * (1 - m_f)
    fh = torch.from_numpy(_dft(4))
    spec = lambda x: (fh @ x.to(torch.complex128) @ fh.T).mean(0)  # noqa: E731
    d = (spec(blended) - spec(t)).abs()**2
    (torch.from_numpy(w) * d).mean().backward()
    assert torch.allclose(pred_a.grad.double(), p.grad, rtol=1e-4, atol=1e-8)


def test_ffl_identical_images_give_zero_without_nan():
    x = torch.randn(2, 3, 4, 4)
    loss = FocalFrequencyLoss()(x.clone(), x, torch.ones(2, 4, 4))
    assert loss.item() == 0.0


def test_ffl_runs_in_float32_under_autocast():
    pred, target, mask = _example()
    pred = pred.bfloat16()
    expected, _ = _numpy_ffl(pred.float().numpy(), target.numpy(), mask.numpy())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = FocalFrequencyLoss()(pred, target, mask)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)
