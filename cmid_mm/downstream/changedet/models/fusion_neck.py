"""Fuse the feature pyramids of the two dates of a change-detection pair (open-cd's neck)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS

IntOrInts = Optional[Union[int, Sequence[int]]]


@MODELS.register_module()
class FeatureFusionNeck(BaseModule):
    """Fuse same-level features of date 1 (``from``) and date 2 (``to``).

    For every level ``i`` of the two pyramids, ``x1[i]`` and ``x2[i]`` of shape
    ``(B, C_i, H_i, W_i)`` become one map:

    * ``'concat'``: ``cat([x1, x2], dim=1)``, shape ``(B, 2 * C_i, H_i, W_i)``; the first
      ``C_i`` channels are date 1 (so a head sized for it takes ``in_channels=[2 * c, ...]``);
    * ``'sum'``: ``x1 + x2``;
    * ``'diff'``: ``x2 - x1`` (the change from date 1 to date 2, signed);
    * ``'abs_diff'``: ``|x1 - x2|`` (symmetric: swapping the dates gives the same map).

    Args:
        policy (str): one of ``'concat'``, ``'sum'``, ``'diff'``, ``'abs_diff'``.
        in_channels (int | Sequence[int], optional): channels ``C_i`` of one date per level.
            Optional, as in open-cd; when given, the incoming features are checked against it
            so that a wrong backbone/head pairing fails here with a readable message.
        channels (int | Sequence[int], optional): channels of each fused output (``2 * C_i``
            for ``'concat'``, ``C_i`` otherwise). Optional; checked like ``in_channels``.
        out_indices (Sequence[int]): which fused levels to return, in this order.
            Defaults to ``(0, 1, 2, 3)``: all four levels of a ResNet / Swin pyramid.
        init_cfg (dict, optional): unused (the neck has no parameters); kept for mmengine.
    """

    POLICIES = ('concat', 'sum', 'diff', 'abs_diff')

    def __init__(self,
                 policy: str,
                 in_channels: IntOrInts = None,
                 channels: IntOrInts = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if policy not in self.POLICIES:
            raise ValueError(f'FeatureFusionNeck: policy {policy!r} is not one of '
                             f'{self.POLICIES}')
        self.policy = policy
        self.in_channels = in_channels
        self.channels = channels
        self.out_indices = tuple(out_indices)

    @staticmethod
    def fuse(x1: Tensor, x2: Tensor, policy: str) -> Tensor:
        """Fuse one level: ``(B, C, H, W)`` x 2 -> ``(B, 2C or C, H, W)``."""
        if policy == 'concat':
            return torch.cat([x1, x2], dim=1)
        if policy == 'sum':
            return x1 + x2
        if policy == 'diff':
            return x2 - x1
        if policy == 'abs_diff':
            return torch.abs(x1 - x2)
        raise ValueError(f'FeatureFusionNeck: unknown policy {policy!r}')

    @staticmethod
    def _per_level(value: IntOrInts, num_levels: int) -> Optional[List[int]]:
        if value is None:
            return None
        if isinstance(value, int):
            return [value] * num_levels
        return list(value)

    def _check(self, x1: Sequence[Tensor], x2: Sequence[Tensor]) -> None:
        if len(x1) != len(x2):
            raise ValueError(f'FeatureFusionNeck: the two dates have {len(x1)} and {len(x2)} '
                             'feature levels; they must come from the same backbone')
        bad = [i for i in self.out_indices if not -len(x1) <= i < len(x1)]
        if bad:
            raise IndexError(
                f'FeatureFusionNeck: out_indices {self.out_indices} ask for level(s) {bad} but '
                f'the backbone gives {len(x1)} level(s): set neck.out_indices to indices below '
                f'{len(x1)} (e.g. out_indices=(0,) for a single-level backbone)')
        for i, (a, b) in enumerate(zip(x1, x2)):
            if a.shape != b.shape:
                raise ValueError(f'FeatureFusionNeck: level {i} has shapes {tuple(a.shape)} '
                                 f'(date 1) and {tuple(b.shape)} (date 2); they must match')
        expected_in = self._per_level(self.in_channels, len(x1))
        if expected_in is not None:
            got = [int(a.shape[1]) for a in x1]
            if expected_in != got:
                raise ValueError(f'FeatureFusionNeck: in_channels={self.in_channels} but the '
                                 f'backbone gives {got} channels per level and date')

    def forward(self, x1: Sequence[Tensor], x2: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Fuse two pyramids.

        Args:
            x1, x2: per-level features of date 1 and date 2, each ``(B, C_i, H_i, W_i)``.

        Returns:
            tuple[Tensor]: the fused levels listed in ``out_indices``.
        """
        self._check(x1, x2)
        outs = tuple(self.fuse(x1[i], x2[i], self.policy) for i in self.out_indices)
        expected_out = self._per_level(self.channels, len(outs))
        if expected_out is not None:
            got = [int(o.shape[1]) for o in outs]
            if expected_out != got:
                raise ValueError(f'FeatureFusionNeck: channels={self.channels} but policy '
                                 f'{self.policy!r} gives {got} fused channels per level')
        return outs
