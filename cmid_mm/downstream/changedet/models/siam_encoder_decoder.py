"""Siamese encoder-decoder: one shared backbone sees both dates, a neck fuses them."""
from typing import List, Optional

import torch
from torch import Tensor

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS


@MODELS.register_module()
class SiamEncoderDecoder(EncoderDecoder):
    """:class:`EncoderDecoder` for change detection (open-cd's ``SiamEncoderDecoder``).

    The input ``(B, 2 * backbone_inchannels, H, W)`` holds date 1 in its first
    ``backbone_inchannels`` channels and date 2 in the rest. :meth:`extract_feat` splits it,
    runs the **same** backbone (shared weights) once on the ``2B`` stacked images, so both
    dates also share batch-norm statistics in training, and hands the two pyramids to the
    fusion neck (e.g. :class:`FeatureFusionNeck`), whose output feeds the ordinary mmseg
    decode / auxiliary heads. Loss, whole/slide inference and post-processing are
    :class:`EncoderDecoder`'s.

    Args:
        backbone_inchannels (int): channels of one date (3 for RGB). Defaults to 3.
        neck (dict): required; the module that fuses the two pyramids,
            called as ``neck(feats_date1, feats_date2)``.
        Other arguments: see :class:`mmseg.models.EncoderDecoder`.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 backbone_inchannels: int = 3):
        if neck is None:
            raise ValueError(
                'SiamEncoderDecoder needs a neck that fuses the two dates, e.g. '
                "neck=dict(type='FeatureFusionNeck', policy='concat')")
        super().__init__(
            backbone=backbone, decode_head=decode_head, neck=neck,
            auxiliary_head=auxiliary_head, train_cfg=train_cfg, test_cfg=test_cfg,
            data_preprocessor=data_preprocessor, pretrained=pretrained, init_cfg=init_cfg)
        self.backbone_inchannels = backbone_inchannels

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Fused features of a batch of image pairs.

        Args:
            inputs (Tensor): ``(B, 2 * backbone_inchannels, H, W)``, date 1 first.

        Returns:
            list[Tensor]: the neck's fused levels, e.g. ``(B, 2 * C_i, H_i, W_i)`` for
            ``policy='concat'``.
        """
        channels = inputs.shape[1]
        if channels != 2 * self.backbone_inchannels:
            raise ValueError(
                f'SiamEncoderDecoder: input has {channels} channels, expected 2 x '
                f'backbone_inchannels = {2 * self.backbone_inchannels} (date 1 then date 2 '
                'on the channel axis); set backbone_inchannels to the channels of one date')
        img_from, img_to = torch.split(inputs, self.backbone_inchannels, dim=1)
        batch = inputs.shape[0]
        feats = self.backbone(torch.cat([img_from, img_to], dim=0))
        feats_from = [f[:batch] for f in feats]
        feats_to = [f[batch:] for f in feats]
        return self.neck(feats_from, feats_to)
