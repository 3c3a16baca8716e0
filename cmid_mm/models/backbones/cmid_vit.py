"""Vision Transformer with CMID's mask token after the patch embedding (method.md §3)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.mask_token import apply_mask_token, check_mask_mode, modified_output

MASK_STRIDE = 4  # default: CMID's masks come at the stride-4 token grid (method.md §2.4)


@MODELS.register_module()
class CMIDVisionTransformer(VisionTransformer):
    """mmpretrain ViT (any arch, same keyword arguments) with a maskable patch embedding.

    CMID masks come at the token grid of ``mask_stride`` px (``token_stride`` of
    ``BlockMaskGenerator``, 4 in CMID); a ViT patch (``patch_size`` source pixels, a multiple
    of ``mask_stride``) is masked if any of its mask cells is masked (max-pooling by
    ``patch_size / mask_stride``). The learnable ``mask_token`` (1, 1, embed_dims),
    zero-initialised, is
    inserted into the patch tokens right after patch embedding, before the cls token and the
    position embedding. It is the only parameter added to the stock ViT, so the state dict
    without ``mask_token`` loads into mmpretrain / mmseg / mmdet ViTs.

    Args:
        mask_stride (int): source pixels per mask cell; must equal ``token_stride`` of the
            pipeline's ``BlockMaskGenerator`` and divide the patch size. A mask of another
            stride is rejected in :meth:`forward` with an error naming both settings.
        mask_mode: ``'add'`` (``x + token * mask``, CMID reference) or ``'replace'``
            (``x * (1 - mask) + token * mask``).
        out_type: as in the stock ViT; defaults to ``'featmap'``, the patch tokens as a
            (B, embed_dims, H / patch_size, W / patch_size) map, which CMID's heads consume.
        **kwargs: passed to :class:`mmpretrain.models.backbones.VisionTransformer`.
    """

    def __init__(self, mask_mode: str = 'add', out_type: str = 'featmap',
                 mask_stride: int = MASK_STRIDE, **kwargs) -> None:
        super().__init__(out_type=out_type, **kwargs)
        self.mask_mode = check_mask_mode(mask_mode)
        if not isinstance(mask_stride, int) or mask_stride <= 0:
            raise ValueError(f'CMIDVisionTransformer: mask_stride must be a positive int (the '
                             f"token_stride of BlockMaskGenerator); got {mask_stride!r}")
        stride = tuple(self.patch_embed.projection.stride)
        if any(s % mask_stride for s in stride):
            raise ValueError(f'CMIDVisionTransformer: the patch embedding has stride {stride} '
                             f'but mask_stride={mask_stride}: the mask cells must tile the '
                             'patches. Use a patch size that is a multiple of mask_stride, or '
                             'a mask_stride (= token_stride of BlockMaskGenerator) dividing '
                             'the patch size.')
        self.mask_stride = mask_stride
        self.cells_per_patch = (stride[0] // mask_stride, stride[1] // mask_stride)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """Run the stock ViT, with the mask token inserted after patch embedding if masked.

        Args:
            x: (B, C_in, H, W) images; other sizes than ``img_size`` use the stock position
                embedding interpolation.
            mask: None, or (B, H / mask_stride, W / mask_stride), 1 = masked, any dtype.

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
        """Pool a mask to the patch grid: a patch is masked if any of its cells is.

        Args:
            mask: (B, hm, wm) at ``mask_stride``, 1 = masked, any dtype; hm, wm multiples of
                patch_size / mask_stride.

        Returns:
            (B, hm / (patch_size / mask_stride), wm / (patch_size / mask_stride)) float mask.
        """
        (kh, kw), (h, w) = self.cells_per_patch, mask.shape[-2:]
        if mask.dim() != 3 or h % kh or w % kw:
            raise ValueError(f'mask has shape {tuple(mask.shape)}: give a (B, H/{self.mask_stride}'
                             f', W/{self.mask_stride}) mask whose grid divides into {kh}x{kw} '
                             'cells per patch')
        return F.max_pool2d(mask.float().unsqueeze(1), self.cells_per_patch).squeeze(1)

    def mask_tokens(self, tokens: torch.Tensor, patch_grid: tuple[int, int],
                    mask: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Insert the mask token into the patch-embedding output.

        Args:
            tokens: (B, h * w, embed_dims) patch tokens, row-major over the patch grid.
            patch_grid: the patch grid (h, w).
            mask: (B, h * patch_size / mask_stride, w * patch_size / mask_stride), 1 = masked.

        Returns:
            ``(tokens, patch_grid)`` like ``patch_embed``, tokens (B, h * w, embed_dims).
        """
        expected = tuple(n * k for n, k in zip(patch_grid, self.cells_per_patch))
        if mask.dim() != 3 or tuple(mask.shape[1:]) != expected:
            pixels = tuple(n * p for n, p in zip(patch_grid,
                                                  self.patch_embed.projection.stride))
            got = (f' (a {pixels[0] / mask.shape[-2]:g} px mask grid)'
                   if mask.dim() == 3 and mask.shape[-2] else '')
            raise ValueError(
                f'mask has shape {tuple(mask.shape)}{got} but the {tuple(patch_grid)} patch grid '
                f'of the {pixels[0]}x{pixels[1]} px input needs a (B, {expected[0]}, '
                f'{expected[1]}) mask at mask_stride={self.mask_stride} px. Set the backbone\'s '
                'mask_stride equal to token_stride of BlockMaskGenerator in the train pipeline.')
        patch_mask = self.patch_mask(mask).flatten(1)
        return apply_mask_token(tokens, self.mask_token, patch_mask, self.mask_mode), patch_grid
