"""``IA_SwinTransformer``: mmseg's Swin with open-cd's bitemporal interaction layers.

open-cd's Changer (``DIEncoderDecoder``) calls its backbone with both dates,
``backbone(img_from, img_to)``, and lets the two streams exchange features after each stage
(``interaction_cfg``: ``SpatialExchange`` / ``ChannelExchange`` / ... per stage, ``None`` =
none). open-cd ships such "IA" backbones for ResNet, ResNeSt and MiT, not for Swin; this is
the Swin one, so a CMID Swin-B can drive a Changer.

It is mmseg's :class:`~mmseg.models.backbones.SwinTransformer` (same parameters and names, so
a CMID Swin export loads into it exactly as into mmseg's Swin) with a two-date ``forward``:
both dates run through the shared blocks of a stage, the stage's interaction layer sees the
two ``(N, C, H, W)`` maps, then each date gets the stage's output norm and patch merging. The
output of stage ``i`` (for ``i`` in ``out_indices``) is the two dates concatenated on
channels, ``(N, 2 * C_i, H_i, W_i)``, as open-cd's IA backbones return it. Without
interaction layers each date's features equal mmseg's Swin run on that date alone.

Registered in mmseg's ``MODELS``: from open-cd configs ``type='mmseg.IA_SwinTransformer'``.
The interaction layers are open-cd's (built in the ``opencd`` scope), so open-cd must be
installed when any is given.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmseg.models.backbones import SwinTransformer
from mmseg.models.utils import nchw_to_nlc, nlc_to_nchw
from mmseg.registry import MODELS


@MODELS.register_module()
class IA_SwinTransformer(SwinTransformer):  # noqa: N801  (open-cd's IA_* naming)
    """Swin Transformer for two dates with interaction layers between them.

    Args:
        interaction_cfg (Sequence[dict | None]): one entry per stage: an open-cd interaction
            layer config (e.g. ``dict(type='ChannelExchange', p=1/2)``) applied to the two
            dates after the stage's blocks, or ``None`` for none.
        **kwargs: the arguments of mmseg's ``SwinTransformer``.
    """

    def __init__(self, interaction_cfg: Sequence[Optional[dict]] = (None, None, None, None),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        interaction_cfg = tuple(interaction_cfg)
        if len(interaction_cfg) != len(self.stages):
            raise ValueError(
                f'IA_SwinTransformer: interaction_cfg has {len(interaction_cfg)} entries but '
                f'the backbone has {len(self.stages)} stages (depths); give one entry '
                '(a layer config or None) per stage')
        layers = []
        for i, cfg in enumerate(interaction_cfg):
            layers.append(None if cfg is None else self._build_interaction(cfg, i))
        # nn.ModuleList cannot hold None: keep stage -> layer in a dict of present ones
        self.ccs = nn.ModuleDict({str(i): m for i, m in enumerate(layers) if m is not None})

    @staticmethod
    def _build_interaction(cfg: dict, stage: int) -> nn.Module:
        try:
            import opencd.models  # noqa: F401  (registers open-cd's interaction layers)
        except ImportError as e:
            raise ImportError(
                f'IA_SwinTransformer: interaction_cfg[{stage}]={dict(cfg)} names an open-cd '
                'interaction layer, but open-cd is not importable; install it from its '
                'checkout (CMID_OPENCD=/path/to/open-cd bash tools/setup_env.sh) or set the '
                f'entry to None ({e})') from e
        cfg = dict(cfg)
        cfg.setdefault('_scope_', 'opencd')
        return MODELS.build(cfg)

    def forward(self, x1: torch.Tensor, x2: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, ...]:
        if x2 is None:
            raise TypeError('IA_SwinTransformer takes both dates, forward(img_from, img_to) '
                            "(open-cd's DIEncoderDecoder); for one image use SwinTransformer")
        if x1.shape != x2.shape:
            raise ValueError(f'IA_SwinTransformer: the two dates differ in shape, '
                             f'{tuple(x1.shape)} vs {tuple(x2.shape)}')

        def embed(x):
            x, hw_shape = self.patch_embed(x)
            if self.use_abs_pos_embed:
                x = x + self.absolute_pos_embed
            return self.drop_after_pos(x), hw_shape

        (x1, hw_shape), (x2, _) = embed(x1), embed(x2)
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                x1 = block(x1, hw_shape)
                x2 = block(x2, hw_shape)
            if str(i) in self.ccs:
                m1, m2 = self.ccs[str(i)](nlc_to_nchw(x1, hw_shape), nlc_to_nchw(x2, hw_shape))
                x1, x2 = nchw_to_nlc(m1), nchw_to_nlc(m2)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                outs.append(torch.cat([nlc_to_nchw(norm(x1), hw_shape),
                                       nlc_to_nchw(norm(x2), hw_shape)], dim=1))
            if stage.downsample is not None:
                x1, down_hw_shape = stage.downsample(x1, hw_shape)
                x2, _ = stage.downsample(x2, hw_shape)
                hw_shape = down_hw_shape
        return tuple(outs)
