"""Swin Transformer with CMID's mask token after the patch embedding (method.md §3)."""
import functools
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.utils import ShiftWindowMSA, WindowMSA
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.mask_token import apply_mask_token, check_mask_mode, modified_output


def shift_window_mask(hw_shape, window_size, shift_size, device=None, value=-1e4):
    """mmpretrain's shifted-window attention mask (``ShiftWindowMSA.get_attn_mask``) with
    ``value`` instead of -100 between tokens from different regions (0 elsewhere)."""
    mask = ShiftWindowMSA.get_attn_mask(hw_shape, window_size, shift_size, device)
    return None if mask is None else mask.masked_fill(mask != 0, value)


class UnbindWindowMSA(WindowMSA):
    """mmpretrain's ``WindowMSA`` with q, k, v taken by ``unbind`` instead of three indexings.

    The same operations in the same order, so outputs and gradients are bit-identical. What
    changes is the backward: each of ``qkv[0]``, ``qkv[1]``, ``qkv[2]`` back-propagates into
    a zero-filled tensor of the whole qkv size, and the three are added; ``unbind``'s
    backward writes the three gradients into one tensor. Measured on 2 cores, forward +
    backward of one Swin-T stage-1 window attention (512 windows of 49 tokens, 96 channels):
    55 -> 46 ms; stage 2: 27 -> 23 ms.
    """

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads,
                                  C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
            self.window_size[0] * self.window_size[1],
            self.window_size[0] * self.window_size[1], -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))


@MODELS.register_module()
class CMIDSwinTransformer(SwinTransformer):
    """mmpretrain Swin Transformer (any arch, same keyword arguments) with a maskable embedding.

    The learnable ``mask_token`` (1, 1, embed_dims), zero-initialised, is inserted into the
    patch-embedding tokens (stride 4 with the stock patch size), before the absolute position
    embedding (if any) and stage 1. It is the only parameter added to the stock Swin, so the
    state dict without ``mask_token`` loads into mmpretrain / mmseg / mmdet Swin Transformers.

    Shifted-window attention masks hold ``shift_mask_value`` (default -1e4) where mmpretrain's
    hold -100. After the softmax's max subtraction a -100 logit gives a weight of about
    e^-100 = 3.7e-44, a subnormal float32; x86 CPUs process subnormal operands in microcode,
    and the batched products that follow (weights @ values, both backward products) took
    4-7x as long on every shifted block (measured on 2 cores, Swin-T's first stage). With
    -1e4 the weight underflows to exactly 0: the masked keys' weights change by < 4e-44,
    far below float32 resolution of any output. ``shift_mask_value=-100`` gives mmpretrain's
    masks back. The window attentions are :class:`UnbindWindowMSA` (bit-identical, faster
    backward).

    Args:
        mask_mode: ``'add'`` (``x + token * mask``, CMID reference) or ``'replace'``
            (``x * (1 - mask) + token * mask``).
        shift_mask_value: attention logit offset between tokens of different regions in the
            shifted windows (see above); must be <= -100.
        **kwargs: passed to :class:`mmpretrain.models.backbones.SwinTransformer`.
    """

    def __init__(self, mask_mode: str = 'add', shift_mask_value: float = -1e4,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.mask_mode = check_mask_mode(mask_mode)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        if not shift_mask_value <= -100:
            raise ValueError(f'CMIDSwinTransformer: shift_mask_value must be <= -100 (it '
                             f'masks attention between shifted regions); got '
                             f'{shift_mask_value!r}')
        mask_fn = functools.partial(shift_window_mask, value=float(shift_mask_value))
        for module in self.modules():
            if not isinstance(module, ShiftWindowMSA):
                continue
            if shift_mask_value != -100:
                # ShiftWindowMSA.forward calls self.get_attn_mask(...) (a staticmethod)
                module.get_attn_mask = mask_fn
            if type(module.w_msa) is WindowMSA:  # not a window_msa given in attn_cfgs
                module.w_msa.__class__ = UnbindWindowMSA  # same parameters, faster backward

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """Run the stock Swin, with the mask token inserted after patch embedding if masked.

        Args:
            x: (B, C_in, H, W) images.
            mask: None, or (B, H/4, W/4) at the patch-embedding token grid, 1 = masked,
                any dtype.

        Returns:
            The stock output: one (B, C_i, H_i, W_i) map per index in ``out_indices``.
            With ``mask=None`` this is ``SwinTransformer.forward(x)`` (exactly with
            ``shift_mask_value=-100``).
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
