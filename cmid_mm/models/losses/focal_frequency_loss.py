"""Focal Frequency Loss of CMID's masked image modelling (docs/method.md §5.1, frequency term)."""
import torch
from mmpretrain.registry import MODELS
from torch import nn

from .recon_inputs import check_recon_inputs


@MODELS.register_module()
class FocalFrequencyLoss(nn.Module):
    """Focal Frequency Loss (Jiang et al., ICCV 2021) on a mask-blended reconstruction.

    Steps (docs/method.md §5.1):

    1. Blend: ``m_f = m + blend * (1 - m)``, ``x_rep = 0.5 * pred.detach() + 0.5 * target``,
       ``pred' = pred * m_f + x_rep * (1 - m_f)``: visible pixels mostly do not count.
    2. ``F = fft2(., norm='ortho')`` over H, W of ``pred'`` and ``target`` (always in at least
       float32, also under autocast), each spectrum averaged over the batch -> (1, N, H, W).
    3. ``d = real**2 + imag**2`` of ``F(pred') - F(target)``.
    4. Focal weight ``w = log(|F(pred') - F(target)| ** alpha + 1) = log(sqrt(d) ** alpha + 1)``
       (the FFL paper's spectrum weight ``|F_r - F_f| ** alpha``, with its logarithm option
       on, as CMID uses it), divided by its maximum over all frequencies and channels
       (the batch is already averaged), NaN -> 0, clamped to [0, 1], detached.
    5. ``loss = mean(w * d) * loss_weight``.

    Args:
        loss_weight (float): multiplier of the loss.
        alpha (float): exponent of the spectrum distance in the focal weight (CMID: 1).
        blend (float): weight of the visible (unmasked) pixels of ``pred`` in the blend.
    """

    def __init__(self, loss_weight: float = 1.0, alpha: float = 1.0,
                 blend: float = 0.001) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.alpha = alpha
        self.blend = blend

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Masked focal frequency loss.

        Args:
            pred: (B, N, H, W) reconstruction.
            target: (B, N, H, W) image it should reproduce.
            mask: (B, 1, H, W) or (B, H, W) pixel mask, 1 = masked (any dtype).

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        mask = check_recon_inputs(pred, target, mask)
        dtype = torch.promote_types(pred.dtype, torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target, mask = pred.to(dtype), target.to(dtype), mask.to(dtype)
            m_f = mask + self.blend * (1 - mask)
            x_rep = 0.5 * pred.detach() + 0.5 * target
            pred = pred * m_f + x_rep * (1 - m_f)

            diff = (torch.fft.fft2(pred, norm='ortho').mean(0, keepdim=True) -
                    torch.fft.fft2(target, norm='ortho').mean(0, keepdim=True))
            dist = diff.real**2 + diff.imag**2

            with torch.no_grad():
                weight = torch.log(dist.sqrt()**self.alpha + 1)
                weight = torch.nan_to_num(weight / weight.max(), nan=0.0).clamp(0, 1)
            return (weight * dist).mean() * self.loss_weight
