"""The learnable mask token of CMID's student backbones (method.md §3).

The three masked backbones (ResNet, Swin, ViT) insert the token into the output of their
stride-4 stem / patch embedding. They share the two fill rules here and the hook that lets them
run the stock forward unchanged around that one insertion.
"""
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

MASK_MODES = ('add', 'replace')


def check_mask_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MASK_MODES`, else raise a ValueError."""
    if mode not in MASK_MODES:
        raise ValueError(f'mask_mode={mode!r} is not supported: use one of {MASK_MODES} '
                         "('add' is the CMID reference, 'replace' is SimMIM style)")
    return mode


def apply_mask_token(x: torch.Tensor, token: torch.Tensor, mask: torch.Tensor,
                     mode: str) -> torch.Tensor:
    """Put the mask token on the masked positions of a feature map or token sequence.

    Two layouts are accepted:

    - channel first: ``x`` (B, C, h, w), ``token`` (1, C, 1, 1), ``mask`` (B, h, w);
    - token last: ``x`` (B, L, C), ``token`` (1, 1, C), ``mask`` (B, L).

    Args:
        x: features.
        token: the learnable mask token, broadcastable to ``x``.
        mask: 1 = masked, 0 = visible, any dtype (values in between blend linearly).
        mode: ``'add'`` gives ``x + token * mask`` (CMID reference); ``'replace'`` gives
            ``x * (1 - mask) + token * mask`` (SimMIM style).

    Returns:
        Tensor of the shape and dtype of ``x``.
    """
    channel_dim = 1 if x.dim() == 4 else -1
    grid = x.shape[:1] + (x.shape[2:] if x.dim() == 4 else x.shape[1:2])
    if x.dim() not in (3, 4) or mask.shape != grid:
        raise ValueError(f'mask has shape {tuple(mask.shape)} but features of shape '
                         f'{tuple(x.shape)} need a mask of shape {tuple(grid)}: '
                         'give (B, h, w) for (B, C, h, w) features or (B, L) for (B, L, C)')
    weight = mask.to(x).unsqueeze(channel_dim)
    token = token.to(x.dtype)
    if check_mask_mode(mode) == 'add':
        return x + token * weight
    return x * (1 - weight) + token * weight


@contextmanager
def modified_output(module: nn.Module, fn: Callable[[Any], Any]) -> Iterator[None]:
    """Inside the ``with`` block, every call of ``module`` returns ``fn(output)``.

    Lets a masked backbone run its parent's stock ``forward`` with the mask token inserted
    after one submodule (the stem or the patch embedding) instead of copying that forward.
    """
    handle = module.register_forward_hook(lambda _module, _args, output: fn(output))
    try:
        yield
    finally:
        handle.remove()
