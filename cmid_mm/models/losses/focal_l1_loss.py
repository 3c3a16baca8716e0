"""Focal-L1 pixel loss of CMID's masked image modelling (method.md §5.1, spatial term)."""
import torch
from mmpretrain.registry import MODELS
from torch import nn

from .recon_inputs import check_recon_inputs


@MODELS.register_module()
class FocalL1Loss(nn.Module):
    """L1 loss re-weighted towards large errors, averaged over masked pixels.

    With ``e = |pred - target|`` the per-element loss is
    ``l = e * (2 * sigmoid(beta * e) - 1) ** gamma``; the result is
    ``sum(l * m) / (sum(m) + eps) / N`` where ``m`` is the pixel mask (broadcast over the N
    channels in the numerator, counted once per pixel in the denominator). It is computed in at
    least float32, whatever the input dtype.

    Args:
        beta (float): slope of the sigmoid, per unit of error (0.2 in CMID).
        gamma (float): exponent of the focal factor (1.0 in CMID).
        eps (float): added to the number of masked pixels to avoid division by zero.
    """

    def __init__(self, beta: float = 0.2, gamma: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.beta = beta
        self.gamma = gamma
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Masked focal-L1 loss.

        Args:
            pred: (B, N, H, W) reconstruction.
            target: (B, N, H, W) image it should reproduce.
            mask: (B, 1, H, W) or (B, H, W) pixel mask, 1 = masked (any dtype).

        Returns:
            Scalar loss (float32, or float64 for float64 inputs).
        """
        mask = check_recon_inputs(pred, target, mask)
        dtype = torch.promote_types(pred.dtype, torch.float32)
        err = (pred.to(dtype) - target.to(dtype)).abs()
        loss = err * (2 * torch.sigmoid(self.beta * err) - 1)**self.gamma
        mask = mask.to(dtype)
        return (loss * mask).sum() / (mask.sum() + self.eps) / pred.shape[1]
