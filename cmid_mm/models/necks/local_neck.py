"""DINO projection of CMID's position-matched cells (method.md §4.3)."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from cmid_mm.models.utils.conv_layout import keep_conv_layout
from cmid_mm.models.utils.precision import at_least_fp32


@MODELS.register_module()
class CMIDLocalNeck(BaseModule):
    """DINO projection applied to each cell separately (the local branch's neck).

    ``mlp``: Linear(in, hid) [BN1d] GELU, (num_layers - 2) x (Linear(hid, hid) [BN1d] GELU),
    Linear(hid, bottleneck) (a single Linear(in, bottleneck) when ``num_layers == 1``); the
    bottleneck is L2-normalised over channels; ``last_layer`` is a weight-normalised
    Linear(bottleneck, out, bias=False) whose magnitude ``g`` is fixed to 1 (not trained), so
    every output is a cosine similarity to one of ``out_channels`` prototypes. The layers keep
    PyTorch's default initialisation (as the reference, method.md §4.3).

    The layers run on the (B * M, C) rows of the M cells of each image, which is what the
    reference's 1x1 ``Conv1d`` layers compute (BatchNorm1d over (B * M, C) rows uses the
    statistics it uses over (B, C, M)); the modules are the Linear layers that run, so
    ``print(model)``, forward hooks and FLOP counters see the real computation. Checkpoints
    keep the Conv1d layout of the weights, ``(out, in, 1)``: keys and shapes are those of
    every earlier cmid_mm checkpoint and of the reference
    (:func:`~cmid_mm.models.utils.conv_layout.keep_conv_layout`).

    The local loss with its centre and teacher temperature is the head,
    :class:`~cmid_mm.models.heads.DINOLocalHead` (mmpretrain's DINO vocabulary: neck =
    projection, head = loss and its state).

    Args:
        in_channels (int): channels C of the cell features (backbone last stage).
        hid_channels (int): hidden width.
        bottleneck_channels (int): width of the normalised bottleneck.
        out_channels (int): number of prototypes K.
        num_layers (int): linear layers in ``mlp`` (>= 1).
        with_bn (bool): BatchNorm1d after each hidden layer (CMID: ResNet yes, Swin no).
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
            layers.append(keep_conv_layout(nn.Linear(channels, hid_channels), 1))
            if with_bn:
                layers.append(nn.BatchNorm1d(hid_channels))
            layers.append(nn.GELU())
            channels = hid_channels
        layers.append(keep_conv_layout(nn.Linear(channels, bottleneck_channels), 1))
        self.mlp = nn.Sequential(*layers)
        self.last_layer = keep_conv_layout(
            weight_norm(nn.Linear(bottleneck_channels, out_channels, bias=False)), 1)
        magnitude = self.last_layer.parametrizations.weight.original0
        magnitude.data.fill_(1)
        magnitude.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project cell features to prototype scores.

        Args:
            x: (B, C, M) features of M cells.

        Returns:
            (B, out_channels, M), in float32 at least, also under autocast: the DINO
            teacher temperature (0.04-0.07) multiplies rounding errors of these outputs by up
            to 25 in the softmax, and the neck sees only the matched cells, a small share of
            a step's FLOPs.
        """
        if x.dim() != 3:
            raise ValueError(f'x must be (B, C, M) cell features (see gather_cells); got '
                             f'{tuple(x.shape)}')
        batch, _, cells = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            rows = at_least_fp32(x).transpose(1, 2).reshape(batch * cells, -1)
            out = self.last_layer(F.normalize(self.mlp(rows), dim=1))
        return out.reshape(batch, cells, -1).transpose(1, 2)
