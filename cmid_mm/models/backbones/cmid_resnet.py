"""ResNet with CMID's mask token after the stride-4 stem (method.md §3)."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.backbones import ResNet
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.mask_token import apply_mask_token, check_mask_mode, modified_output


@MODELS.register_module()
class CMIDResNet(ResNet):
    """mmpretrain ResNet (any depth, same keyword arguments) whose stem output can be masked.

    The learnable ``mask_token`` (1, C_stem, 1, 1), zero-initialised, is inserted into the
    stride-4 stem output (conv1-norm1-relu-maxpool, or the deep stem and maxpool), before
    ``layer1``. It is the only parameter added to the stock ResNet, so the state dict without
    ``mask_token`` loads into mmpretrain / mmseg / mmdet ResNets.

    Args:
        mask_mode: ``'add'`` (``x + token * mask``, CMID reference) or ``'replace'``
            (``x * (1 - mask) + token * mask``).
        **kwargs: passed to :class:`mmpretrain.models.backbones.ResNet` (``depth``, ...).
    """

    def __init__(self, mask_mode: str = 'add', **kwargs) -> None:
        depth = kwargs.get('depth')
        if depth not in self.arch_settings:  # mmpretrain's own error lists no valid depths
            raise KeyError(f'CMIDResNet: depth={depth!r} is not a ResNet depth; set '
                           f'model.backbone.depth to one of {sorted(self.arch_settings)}')
        super().__init__(**kwargs)
        self.mask_mode = check_mask_mode(mask_mode)
        # both stem variants end with `stem_channels` maps
        self.mask_token = nn.Parameter(torch.zeros(1, self.stem_channels, 1, 1))

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """Run the stock ResNet, with the mask token inserted after the stem if ``mask`` is given.

        Args:
            x: (B, C_in, H, W) images.
            mask: None, or (B, H/4, W/4) at the stem output grid, 1 = masked, any dtype.

        Returns:
            The stock output: one (B, C_i, H_i, W_i) map per index in ``out_indices``.
            With ``mask=None`` this is exactly ``ResNet.forward(x)``.
        """
        if mask is None:
            return super().forward(x)
        with modified_output(self.maxpool, lambda stem: self.mask_stem(stem, mask)):
            return super().forward(x)

    def mask_stem(self, stem: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Insert the mask token into the stem output.

        Args:
            stem: (B, C_stem, h, w) stem output (stride 4 for a stock stem).
            mask: (B, h, w), 1 = masked.

        Returns:
            (B, C_stem, h, w).
        """
        grid = (stem.shape[0], *stem.shape[2:])
        if tuple(mask.shape) != grid:
            raise ValueError(f'mask has shape {tuple(mask.shape)} but the stem output is '
                             f'{tuple(stem.shape)}: give a (B, h, w) = {grid} mask, i.e. '
                             'the (B, H/4, W/4) token grid of the input images')
        return apply_mask_token(stem, self.mask_token, mask, self.mask_mode)
