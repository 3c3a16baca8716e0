"""Shared argument check of the two pixel reconstruction losses."""
import torch


def check_recon_inputs(pred: torch.Tensor, target: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """Validate ``pred``/``target`` (B, N, H, W) and return ``mask`` as (B, 1, H, W).

    ``mask`` may be (B, 1, H, W) or (B, H, W) at the pixel size of ``pred``, 1 = masked.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f'pred and target must both be (B, N, H, W); got '
                         f'{tuple(pred.shape)} and {tuple(target.shape)}')
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ValueError(f'mask must be (B, 1, H, W) or (B, H, W) at the pixel size of pred '
                         f'{tuple(pred.shape)}; got {tuple(mask.shape)}')
    return mask
