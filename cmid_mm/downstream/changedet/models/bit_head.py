"""BIT: a bitemporal image transformer head for change detection (Chen, Qi & Shi, 2021).

Remote Sensing Image Change Detection With Transformers, IEEE TGRS 2021. The head reads the
two dates' backbone features, which the :class:`FeatureFusionNeck` (``policy='concat'``)
hands over stacked on channels, and:

1. projects each date to ``channels`` (upsample ``pre_upsample`` x, 3x3 conv);
2. **semantic tokenizer**: ``token_len`` spatial attention maps (1x1 conv, softmax over
   all pixels) pool each date into ``token_len`` tokens of ``channels`` values
   (or, with ``use_tokenizer=False``, max / avg pooling to ``pool_size x pool_size``);
3. **transformer encoder** over the ``2 * token_len`` tokens of both dates (plus a learned
   position embedding): the context shared by the pair;
4. **transformer decoder** (Siamese: same weights for both dates): every pixel of a date
   queries its date's tokens and is refined by what they say;
5. **prediction**: ``|date1 - date2|`` of the refined features, upsampled
   ``upsample_size`` x, a 3x3 conv-BN-ReLU and the 1x1 classifier of mmseg's heads.

Argument names follow open-cd's ``BITHead`` so its configs port unchanged.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


class _CrossAttention(nn.Module):
    """Multi-head attention of queries ``(B, N, C)`` over a reference ``(B, M, C)``.

    The queries / keys / values are projected to ``embed_dims`` (split into ``num_heads``
    heads), scaled dot products are soft-maxed over the ``M`` reference items, and the result
    is projected back to ``C``. Returns ``(B, N, C)``.
    """

    def __init__(self, dims: int, embed_dims: int, num_heads: int, drop_rate: float):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'BITHead: embed_dims={embed_dims} must be divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.q = nn.Linear(dims, embed_dims, bias=False)
        self.kv = nn.Linear(dims, 2 * embed_dims, bias=False)
        self.proj = nn.Linear(embed_dims, dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        b, n, _ = x.shape
        m = ref.shape[1]
        q = self.q(x).reshape(b, n, self.num_heads, -1).transpose(1, 2)  # (B, h, N, d)
        k, v = self.kv(ref).reshape(b, m, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, h, N, M)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.drop(self.proj(out))


class _TransformerBlock(nn.Module):
    """Pre-norm block: ``x += attn(norm(x), norm'(ref))``; ``x += mlp(norm(x))``.

    With ``ref=None`` it is a self-attention (encoder) block. The MLP is
    ``C -> embed_dims -> C`` with GELU.
    """

    def __init__(self, dims, embed_dims, num_heads, drop_rate, norm_cfg, cross):
        super().__init__()
        self.norm_q = build_norm_layer(norm_cfg, dims)[1]
        self.norm_ref = build_norm_layer(norm_cfg, dims)[1] if cross else None
        self.attn = _CrossAttention(dims, embed_dims, num_heads, drop_rate)
        self.norm_mlp = build_norm_layer(norm_cfg, dims)[1]
        self.mlp = nn.Sequential(
            nn.Linear(dims, embed_dims), nn.GELU(), nn.Dropout(drop_rate),
            nn.Linear(embed_dims, dims), nn.Dropout(drop_rate))

    def forward(self, x: Tensor, ref: Tensor = None) -> Tensor:
        q = self.norm_q(x)
        ref = q if self.norm_ref is None else self.norm_ref(ref)
        x = x + self.attn(q, ref)
        return x + self.mlp(self.norm_mlp(x))


@MODELS.register_module()
class BITHead(BaseDecodeHead):
    """Bitemporal image transformer change head (see the module docstring).

    Input: the neck outputs, each level holding both dates on channels (date 1 first); the
    ``in_index`` level gives ``(B, 2 * in_channels, H, W)`` (with
    ``input_transform='resize_concat'``, the listed levels are concatenated per date and
    ``in_channels`` is their list of per-date channels). Output: logits
    ``(B, num_classes, H * pre_upsample * upsample_size, W * pre_upsample * upsample_size)``
    (mmseg resizes them to the label / image size).

    Args:
        in_channels (int | list[int]): backbone channels of ONE date (a list per level with
            ``input_transform='resize_concat'``). Defaults to 512.
        channels (int): feature / token width ``C`` inside the head. Defaults to 32.
        embed_dims (int): attention width (all heads together) and MLP hidden width.
            Defaults to 64.
        enc_depth (int): transformer encoder blocks over the tokens. Defaults to 1.
        enc_with_pos (bool): add a learned position embedding ``(1, 2 * L, C)`` to the tokens
            before the encoder. Defaults to True.
        dec_depth (int): transformer decoder blocks (pixels attend to tokens). Defaults to 8.
        num_heads (int): attention heads; must divide ``embed_dims``. Defaults to 8.
        drop_rate (float): dropout in attention outputs and MLPs. Defaults to 0.
        use_tokenizer (bool): semantic tokenizer (True) or pooled tokens (False).
        token_len (int): tokens ``L`` per date with the tokenizer. Defaults to 4.
        pool_size (int): without the tokenizer, ``L = pool_size ** 2`` pooled cells.
        pool_mode (str): ``'max'`` or ``'avg'`` pooling without the tokenizer.
        pre_upsample (int): upsampling of the backbone map before projection. Defaults to 2.
        upsample_size (int): upsampling of the difference map before classification.
            Defaults to 4.
        norm_cfg (dict): norm of the transformer blocks. Defaults to ``dict(type='LN')``.
        act_cfg (dict): activation of the prediction conv. Defaults to ReLU.
        classifier_norm_cfg (dict): norm of the prediction conv (BIT uses batch norm).
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead` arguments
            (``num_classes``, ``loss_decode``, ``dropout_ratio``, ``align_corners``, ...).
    """

    def __init__(self,
                 in_channels: int = 512,
                 channels: int = 32,
                 embed_dims: int = 64,
                 enc_depth: int = 1,
                 enc_with_pos: bool = True,
                 dec_depth: int = 8,
                 num_heads: int = 8,
                 drop_rate: float = 0.,
                 use_tokenizer: bool = True,
                 token_len: int = 4,
                 pool_size: int = 2,
                 pool_mode: str = 'max',
                 pre_upsample: int = 2,
                 upsample_size: int = 4,
                 norm_cfg: dict = dict(type='LN'),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 classifier_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 **kwargs):
        super().__init__(in_channels, channels, norm_cfg=norm_cfg, act_cfg=act_cfg, **kwargs)
        if not isinstance(self.in_channels, int):
            raise TypeError(f'BITHead reads one map per date: in_channels must be an int (or '
                            f"a list with input_transform='resize_concat'), got {in_channels!r}")
        if pool_mode not in ('max', 'avg'):
            raise ValueError(f"BITHead: pool_mode must be 'max' or 'avg', got {pool_mode!r}")
        self.use_tokenizer = use_tokenizer
        self.pool_size = pool_size
        self.pool_mode = pool_mode
        self.token_len = token_len if use_tokenizer else pool_size * pool_size
        self.pre_upsample = pre_upsample
        self.upsample_size = upsample_size

        self.pre_process = nn.Conv2d(self.in_channels, channels, 3, padding=1)
        if use_tokenizer:
            self.token_attention = nn.Conv2d(channels, self.token_len, 1)
        self.pos_embedding = nn.Parameter(
            torch.zeros(1, 2 * self.token_len, channels)) if enc_with_pos else None
        self.encoder = nn.ModuleList(
            _TransformerBlock(channels, embed_dims, num_heads, drop_rate, norm_cfg, cross=False)
            for _ in range(enc_depth))
        self.decoder = nn.ModuleList(
            _TransformerBlock(channels, embed_dims, num_heads, drop_rate, norm_cfg, cross=True)
            for _ in range(dec_depth))
        self.classifier = ConvModule(
            channels, channels, 3, padding=1, norm_cfg=classifier_norm_cfg, act_cfg=act_cfg)

    def init_weights(self):
        super().init_weights()
        if self.pos_embedding is not None:
            trunc_normal_(self.pos_embedding, std=0.02)

    def tokenize(self, x: Tensor) -> Tensor:
        """Tokens ``(B, L, C)`` of a feature map ``(B, C, H, W)``.

        With the semantic tokenizer, token ``l`` is the average of the pixel features
        weighted by the ``l``-th spatial attention map (softmax over the ``H * W`` pixels,
        so the weights of one token sum to 1).
        """
        if self.use_tokenizer:
            attn = self.token_attention(x).flatten(2).softmax(dim=-1)  # (B, L, HW)
            return attn @ x.flatten(2).transpose(1, 2)  # (B, L, C)
        pool = F.adaptive_max_pool2d if self.pool_mode == 'max' else F.adaptive_avg_pool2d
        return pool(x, self.pool_size).flatten(2).transpose(1, 2)

    def decode(self, x: Tensor, tokens: Tensor) -> Tensor:
        """Refine pixels ``(B, C, H, W)`` by attending to their date's tokens ``(B, L, C)``."""
        b, c, h, w = x.shape
        seq = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        for block in self.decoder:
            seq = block(seq, tokens)
        return seq.transpose(1, 2).reshape(b, c, h, w)

    def _upsample(self, x: Tensor, factor: int) -> Tensor:
        if factor == 1:
            return x
        return F.interpolate(x, scale_factor=factor, mode='bilinear',
                             align_corners=self.align_corners)

    def split_dates(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        """The two dates' maps ``(B, in_channels, H, W)`` from the fused neck outputs.

        Every level is split in half on channels (date 1 first, as ``policy='concat'``
        stacks them) before mmseg's ``in_index`` / ``input_transform`` selection, so that
        ``input_transform='resize_concat'`` gathers the levels of each date separately.
        """
        if any(x.shape[1] % 2 for x in inputs):
            raise ValueError(
                f'BITHead: got levels with {[x.shape[1] for x in inputs]} channels; it needs '
                "both dates stacked on channels: use FeatureFusionNeck(policy='concat')")
        halves = [torch.chunk(x, 2, dim=1) for x in inputs]
        dates = [self._transform_inputs([h[d] for h in halves]) for d in (0, 1)]
        if dates[0].shape[1] != self.in_channels:
            raise ValueError(
                f'BITHead: each date has {dates[0].shape[1]} channels but in_channels='
                f'{self.in_channels}; set in_channels to ONE date\'s channels (the neck '
                "output of FeatureFusionNeck(policy='concat') holds both)")
        return dates

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(B, num_classes, H', W')`` from the fused neck outputs."""
        dates = [self.pre_process(self._upsample(d, self.pre_upsample))
                 for d in self.split_dates(inputs)]
        tokens = torch.cat([self.tokenize(d) for d in dates], dim=1)  # (B, 2L, C)
        if self.pos_embedding is not None:
            tokens = tokens + self.pos_embedding
        for block in self.encoder:
            tokens = block(tokens)
        tokens_from, tokens_to = torch.chunk(tokens, 2, dim=1)
        diff = torch.abs(self.decode(dates[0], tokens_from) - self.decode(dates[1], tokens_to))
        feat = self.classifier(self._upsample(diff, self.upsample_size))
        return self.cls_seg(feat)
