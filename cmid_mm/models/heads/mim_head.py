"""Pixel decoder and reconstruction losses of CMID's MIM (method.md §4.1, §5.1)."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn

from cmid_mm.models.utils.conv_layout import keep_conv_layout
from cmid_mm.models.utils.mean_fill import upsample_mask


@MODELS.register_module()
class CMIDMIMHead(BaseModule):
    """Reconstruct the normalised view from the last feature map; spatial + frequency loss.

    The decoder is SimMIM's linear decoder: a linear map of every feature-map cell to
    ``encoder_stride**2 * in_chans`` values followed by ``PixelShuffle(encoder_stride)``. The
    sum of the two returned losses is CMID's ``L_rec`` of one view.

    ``decoder`` is ``Sequential(Linear, PixelShuffle)``: the Linear runs on the (B * h * w, C)
    rows of the cells (the same numbers as a 1x1 convolution, ~1.4x faster than oneDNN's 1x1
    ``Conv2d`` forward + backward on CPU at 2048 -> 3072 channels, docs/benchmarks.md), so
    ``print(model)``, forward hooks and FLOP counters see what runs. Call the head, not
    ``decoder`` directly (the Linear needs channel-last rows). Checkpoints keep the
    ``Conv2d`` layout of the weight, ``decoder.0.weight`` ``(out, in, 1, 1)``, as every earlier
    cmid_mm checkpoint and the reference's ``mim2org.decoder_pred``
    (:func:`~cmid_mm.models.utils.conv_layout.keep_conv_layout`).

    Why not mmpretrain's ``SimMIMLinearDecoder`` + ``SimMIMHead``: the decoder maths is the
    same (1x1 ``Conv2d`` + ``PixelShuffle``), but ``SimMIMLinearDecoder`` keeps the Conv2d
    (its module would again differ from the faster computation run here, or the speed would
    be lost) and ``SimMIMHead`` computes only a pixel loss on the masked pixels from a
    patch-grid mask, while CMID adds the focal frequency loss and takes the stride-4 token
    mask; ``SimMIMLinearDecoder`` also fixes 3 output channels (``encoder_stride**2 * 3``)
    where CMID reconstructs ``in_chans`` bands (multispectral). For RGB the state-dict keys
    (``decoder.0.*``) and layout equal ``SimMIMLinearDecoder``'s, so its weights load here
    and vice versa.

    Args:
        in_channels (int): channels C of the last feature map (2048 for ResNet-50).
        encoder_stride (int): source pixels per feature-map cell (32 for ResNet / Swin, 16 for
            ViT/16).
        in_chans (int): image channels N to reconstruct (3 for RGB, bands for multispectral).
        loss_spatial (dict): pixel-space loss, called ``(pred, target, pixel_mask)``.
        loss_freq (dict): frequency-space loss, called ``(pred, target, pixel_mask)``.
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 encoder_stride: int = 32,
                 in_chans: int = 3,
                 loss_spatial: dict = dict(type='FocalL1Loss'),
                 loss_freq: dict = dict(type='FocalFrequencyLoss'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.encoder_stride = encoder_stride
        self.decoder = nn.Sequential(
            keep_conv_layout(nn.Linear(in_channels, encoder_stride**2 * in_chans), 2),
            nn.PixelShuffle(encoder_stride))
        self.loss_spatial = MODELS.build(loss_spatial)
        self.loss_freq = MODELS.build(loss_freq)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Decode pixels.

        Args:
            feat: (B, C, h, w) last-stage feature map.

        Returns:
            (B, in_chans, h * encoder_stride, w * encoder_stride) reconstruction.
        """
        linear, shuffle = self.decoder
        batch, channels, h, w = feat.shape
        out = linear(feat.permute(0, 2, 3, 1).reshape(batch * h * w, channels))
        return shuffle(out.reshape(batch, h, w, -1).permute(0, 3, 1, 2))

    def loss(self, feat: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Reconstruction losses of one view from its masked feature map.

        Args:
            feat: (B, C, h, w) last-stage feature map of the masked view.
            target: (B, N, H, W) the unmasked normalised view, H = h * encoder_stride.
            mask: (B, H', W') with 1 = masked, on any grid whose size divides (H, W)
                (e.g. the stride-4 token grid); upsampled to pixels by repetition.

        Returns:
            ``loss_spatial`` and ``loss_freq`` (scalars).
        """
        return self.loss_by_recon(self(feat), target, mask)

    def loss_by_recon(self, pred: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Reconstruction losses of one view from its reconstruction ``pred = self(feat)``
        (what ``CMID.reconstruct`` returns); arguments as :meth:`loss`."""
        height, width = target.shape[-2:]
        if height % self.encoder_stride or width % self.encoder_stride:
            raise ValueError(
                f'the views are {height}x{width} px, not a multiple of the backbone stride '
                f'encoder_stride={self.encoder_stride}: the feature map cannot cover the view '
                'exactly, so the reconstruction cannot match it. Set the crop size (`scale` of '
                'RandomResizedCropWithBox and input_size of BlockMaskGenerator) to a multiple '
                f'of {self.encoder_stride}, e.g. '
                f'{height // self.encoder_stride * self.encoder_stride} '
                f'or {(height // self.encoder_stride + 1) * self.encoder_stride}.')
        if pred.shape != target.shape:
            raise ValueError(f'reconstruction {tuple(pred.shape)} does not match the target '
                             f'{tuple(target.shape)}: set encoder_stride to the backbone '
                             'stride of the feature map and in_chans to the image channels')
        pixel_mask = upsample_mask(mask, target.shape[-2:])
        return dict(
            loss_spatial=self.loss_spatial(pred, target, pixel_mask),
            loss_freq=self.loss_freq(pred, target, pixel_mask))
