"""Vision Transformer with CMID's mask token after the patch embedding (method.md §3)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.mask_token import apply_mask_token, check_mask_mode, modified_output

MASK_STRIDE = 4  # CMID masks are generated at the stride-4 token grid


@MODELS.register_module()
class CMIDVisionTransformer(VisionTransformer):
    """mmpretrain ViT (any arch, same keyword arguments) with a maskable patch embedding.

    CMID masks come at the stride-4 grid; a ViT patch (``patch_size`` source pixels, a
    multiple of 4) is masked if any of its stride-4 cells is masked (max-pooling by
    ``patch_size / 4``). The learnable ``mask_token`` (1, 1, embed_dims), zero-initialised, is
    inserted into the patch tokens right after patch embedding, before the cls token and the
    position embedding. It is the only parameter added to the stock ViT, so the state dict
    without ``mask_token`` loads into mmpretrain / mmseg / mmdet ViTs.

    Args:
        mask_mode: ``'add'`` (``x + token * mask``, CMID reference) or ``'replace'``
            (``x * (1 - mask) + token * mask``).
        out_type: as in the stock ViT; defaults to ``'featmap'``, the patch tokens as a
            (B, embed_dims, H / patch_size, W / patch_size) map, which CMID's heads consume.
        **kwargs: passed to :class:`mmpretrain.models.backbones.VisionTransformer`.
    """

    def __init__(self, mask_mode: str = 'add', out_type: str = 'featmap', **kwargs) -> None:
        super().__init__(out_type=out_type, **kwargs)
        self.mask_mode = check_mask_mode(mask_mode)
        stride = tuple(self.patch_embed.projection.stride)
        if any(s % MASK_STRIDE for s in stride):
            raise ValueError(f'the patch embedding has stride {stride} but CMID masks come at '
                             f'stride {MASK_STRIDE}: use a patch size that is a multiple of '
                             f'{MASK_STRIDE}')
        self.cells_per_patch = (stride[0] // MASK_STRIDE, stride[1] // MASK_STRIDE)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """Run the stock ViT, with the mask token inserted after patch embedding if masked.

        Args:
            x: (B, C_in, H, W) images; other sizes than ``img_size`` use the stock position
                embedding interpolation.
            mask: None, or (B, H/4, W/4) at the stride-4 grid, 1 = masked, any dtype.

        Returns:
            The stock output for ``out_type`` and ``out_indices``; for ``'featmap'`` one
            (B, embed_dims, H / patch_size, W / patch_size) map per index.
            With ``mask=None`` this is exactly ``VisionTransformer.forward(x)``.
        """
        if mask is None:
            return super().forward(x)
        with modified_output(self.patch_embed, lambda out: self.mask_tokens(*out, mask)):
            return super().forward(x)

    def patch_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Pool a stride-4 mask to the patch grid: a patch is masked if any of its cells is.

        Args:
            mask: (B, h4, w4), 1 = masked, any dtype; h4, w4 multiples of patch_size / 4.

        Returns:
            (B, h4 / (patch_size / 4), w4 / (patch_size / 4)) float mask.
        """
        (kh, kw), (h, w) = self.cells_per_patch, mask.shape[-2:]
        if mask.dim() != 3 or h % kh or w % kw:
            raise ValueError(f'mask has shape {tuple(mask.shape)}: give a (B, H/4, W/4) mask '
                             f'whose grid divides into {kh}x{kw} cells per patch')
        return F.max_pool2d(mask.float().unsqueeze(1), self.cells_per_patch).squeeze(1)

    def mask_tokens(self, tokens: torch.Tensor, patch_grid: tuple[int, int],
                    mask: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Insert the mask token into the patch-embedding output.

        Args:
            tokens: (B, h * w, embed_dims) patch tokens, row-major over the patch grid.
            patch_grid: the patch grid (h, w).
            mask: (B, h * patch_size / 4, w * patch_size / 4) stride-4 mask, 1 = masked.

        Returns:
            ``(tokens, patch_grid)`` like ``patch_embed``, tokens (B, h * w, embed_dims).
        """
        expected = tuple(n * k for n, k in zip(patch_grid, self.cells_per_patch))
        if tuple(mask.shape[1:]) != expected:
            raise ValueError(f'mask has shape {tuple(mask.shape)} but the {tuple(patch_grid)} '
                             f'patch grid needs a (B, {expected[0]}, {expected[1]}) mask '
                             '(the stride-4 grid of the input images)')
        patch_mask = self.patch_mask(mask).flatten(1)
        return apply_mask_token(tokens, self.mask_token, patch_mask, self.mask_mode), patch_grid
