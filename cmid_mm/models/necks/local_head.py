"""DINO projection head on the position-matched cells of CMID (method.md §4.3)."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@MODELS.register_module()
class CMIDLocalHead(BaseModule):
    """DINO head applied per cell with 1x1 Conv1d layers.

    ``mlp``: Conv1d(in, hid) [BN1d] GELU, (num_layers - 2) x (Conv1d(hid, hid) [BN1d] GELU),
    Conv1d(hid, bottleneck) (a single Conv1d(in, bottleneck) when ``num_layers == 1``); the
    bottleneck is L2-normalised over channels; ``last_layer`` is a weight-normalised
    Conv1d(bottleneck, out, bias=False) whose magnitude ``g`` is fixed to 1 (not trained), so
    every output is a cosine similarity to one of ``out_channels`` prototypes. The convolutions
    keep PyTorch's default initialisation (as the reference, method.md §4.3).

    Args:
        in_channels (int): channels C of the cell features (backbone last stage).
        hid_channels (int): hidden width.
        bottleneck_channels (int): width of the normalised bottleneck.
        out_channels (int): number of prototypes K.
        num_layers (int): convolutions in ``mlp`` (>= 1).
        with_bn (bool): BatchNorm1d after each hidden convolution (CMID: ResNet yes, Swin no).
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 out_channels: int = 2048,
                 num_layers: int = 3,
                 with_bn: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1; got {num_layers}')
        layers: List[nn.Module] = []
        channels = in_channels
        for _ in range(num_layers - 1):
            layers.append(nn.Conv1d(channels, hid_channels, 1))
            if with_bn:
                layers.append(nn.BatchNorm1d(hid_channels))
            layers.append(nn.GELU())
            channels = hid_channels
        layers.append(nn.Conv1d(channels, bottleneck_channels, 1))
        self.mlp = nn.Sequential(*layers)
        self.last_layer = weight_norm(
            nn.Conv1d(bottleneck_channels, out_channels, 1, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        magnitude.data.fill_(1)
        magnitude.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project cell features to prototype scores.

        Args:
            x: (B, C, M) features of M cells.

        Returns:
            (B, out_channels, M).
        """
        if x.dim() != 3:
            raise ValueError(f'x must be (B, C, M) cell features (see gather_cells); got '
                             f'{tuple(x.shape)}')
        # The 1x1 convolutions run as matrix products on (B*M, C) rows: the same numbers
        # (BatchNorm1d over (B*M, C) rows uses the statistics it uses over (B, C, M)), faster
        # than oneDNN's Conv1d on CPU for these shapes (docs/benchmarks.md).
        batch, _, cells = x.shape
        h = x.transpose(1, 2).reshape(batch * cells, -1)
        for layer in self.mlp:
            h = _linear(layer, h) if isinstance(layer, nn.Conv1d) else layer(h)
        h = _linear(self.last_layer, F.normalize(h, dim=1))
        return h.reshape(batch, cells, -1).transpose(1, 2)


def _linear(conv: nn.Conv1d, rows: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``Conv1d`` applied to (N, C_in) rows, as ``F.linear`` with its own parameters."""
    return F.linear(rows, conv.weight.squeeze(-1), conv.bias)
