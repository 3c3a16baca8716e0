"""Mean fill of masked pixels (method.md §2.5)."""
import torch


def upsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of a token-grid mask to pixels.

    Args:
        mask: (B, h, w), 1 = masked, any dtype; ``size`` must be integer multiples of (h, w).
        size: (H, W) in pixels.

    Returns:
        (B, 1, H, W) float mask.
    """
    (H, W), (h, w) = size, mask.shape[-2:]
    if H % h or W % w:
        raise ValueError(f'mask grid {(h, w)} does not divide the image size {(H, W)}: the '
                         'mask must be generated for the same input size as the views')
    mask = mask.float().repeat_interleave(H // h, dim=-2).repeat_interleave(W // w, dim=-1)
    return mask.unsqueeze(1)


def mean_fill(img: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Replace masked pixels by the image's own per-channel mean.

    Args:
        img: (B, N, H, W) normalised view.
        pixel_mask: (B, 1, H, W), 1 = masked.

    Returns:
        (B, N, H, W): ``img`` where unmasked, the mean of ``img`` over all H x W pixels of that
        image and channel (masked ones included) where masked.
    """
    mean = img.mean(dim=(2, 3), keepdim=True)
    return torch.where(pixel_mask.bool(), mean, img)
