"""Swin Transformer with CMID's mask token after the patch embedding (method.md §3)."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.mask_token import apply_mask_token, check_mask_mode, modified_output


@MODELS.register_module()
class CMIDSwinTransformer(SwinTransformer):
    """mmpretrain Swin Transformer (any arch, same keyword arguments) with a maskable embedding.

    The learnable ``mask_token`` (1, 1, embed_dims), zero-initialised, is inserted into the
    patch-embedding tokens (stride 4 with the stock patch size), before the absolute position
    embedding (if any) and stage 1. It is the only parameter added to the stock Swin, so the
    state dict without ``mask_token`` loads into mmpretrain / mmseg / mmdet Swin Transformers.

    Args:
        mask_mode: ``'add'`` (``x + token * mask``, CMID reference) or ``'replace'``
            (``x * (1 - mask) + token * mask``).
        **kwargs: passed to :class:`mmpretrain.models.backbones.SwinTransformer`.
    """

    def __init__(self, mask_mode: str = 'add', **kwargs) -> None:
        super().__init__(**kwargs)
        self.mask_mode = check_mask_mode(mask_mode)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """Run the stock Swin, with the mask token inserted after patch embedding if masked.

        Args:
            x: (B, C_in, H, W) images.
            mask: None, or (B, H/4, W/4) at the patch-embedding token grid, 1 = masked,
                any dtype.

        Returns:
            The stock output: one (B, C_i, H_i, W_i) map per index in ``out_indices``.
            With ``mask=None`` this is exactly ``SwinTransformer.forward(x)``.
        """
        if mask is None:
            return super().forward(x)
        with modified_output(self.patch_embed, lambda out: self.mask_tokens(*out, mask)):
            return super().forward(x)

    def mask_tokens(self, tokens: torch.Tensor, hw_shape: tuple[int, int],
                    mask: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Insert the mask token into the patch-embedding output.

        Args:
            tokens: (B, h * w, embed_dims) patch tokens, row-major over the token grid.
            hw_shape: the token grid (h, w).
            mask: (B, h, w), 1 = masked.

        Returns:
            ``(tokens, hw_shape)`` like ``patch_embed``, tokens (B, h * w, embed_dims).
        """
        if tuple(mask.shape[1:]) != tuple(hw_shape):
            raise ValueError(f'mask has shape {tuple(mask.shape)} but the patch embedding '
                             f'gives a {tuple(hw_shape)} token grid: give a (B, '
                             f'{hw_shape[0]}, {hw_shape[1]}) mask, i.e. (B, H/4, W/4)')
        tokens = apply_mask_token(tokens, self.mask_token, mask.flatten(1), self.mask_mode)
        return tokens, hw_shape
