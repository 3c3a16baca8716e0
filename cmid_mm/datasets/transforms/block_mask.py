"""Block-wise random mask of a view, stored on the stride-4 token grid (method.md §2.4)."""
import math
from typing import Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BlockMaskGenerator(BaseTransform):
    """Mask a random subset of square blocks of the view; output the mask per token.

    The ``(H, W)`` view is split into a grid of ``block_size`` px blocks,
    ``ceil(n_blocks * mask_ratio)`` of them are drawn uniformly without replacement (numpy's
    global RNG, so mmengine's seeding makes it reproducible), and the mask is written at the
    token grid of stride ``token_stride`` px: each block covers
    ``(block_size / token_stride) ** 2`` tokens. At the defaults (224 px, 32 px blocks,
    stride 4, ratio 0.6): 7x7 blocks, 30 masked, a 56x56 mask with 30 * 64 ones.

    Why not mmpretrain's ``SimMIMMaskGenerator``: at the same RNG state it draws the same
    mask for a square view (``input_size``, ``mask_patch_size`` = ``block_size``,
    ``model_patch_size`` = ``token_stride``; a test checks this at CMID's defaults), but it
    handles square views only, counts ``int(np.ceil(n_blocks * mask_ratio))`` without
    rounding first (``ceil(100 * 0.07)`` masks 8 of 100 blocks, not 7), accepts a ratio that
    masks every block and checks its arguments with ``assert`` (gone under ``python -O``).
    Subclassing would override both of its methods, so this class stands alone.

    **Required Keys:** none (if ``img`` is present, its size must be ``input_size``).

    **Added Keys:** ``mask`` (np.ndarray, uint8, ``(H / token_stride, W / token_stride)``,
    1 = masked).

    Args:
        input_size (int | tuple[int, int]): View size ``(H, W)`` in pixels (an int: square).
        block_size (int): Side of a masking block, pixels. Must divide ``H`` and ``W``.
        token_stride (int): Stride of the token grid the mask is stored at, pixels. Must
            divide ``block_size``.
        mask_ratio (float): Fraction of blocks to mask, in (0, 1).
    """

    def __init__(self,
                 input_size: Union[int, Tuple[int, int]] = 224,
                 block_size: int = 32,
                 token_stride: int = 4,
                 mask_ratio: float = 0.6) -> None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if block_size <= 0 or token_stride <= 0:
            raise ValueError(f'block_size={block_size} and token_stride={token_stride} must be '
                             'positive.')
        if len(size) != 2 or any(s <= 0 or s % block_size for s in size):
            raise ValueError(f'input_size={input_size} must be positive and divisible by '
                             f'block_size={block_size}; change one of them.')
        if block_size % token_stride:
            raise ValueError(f'block_size={block_size} must be divisible by '
                             f'token_stride={token_stride}.')
        if not 0. < mask_ratio < 1.:
            raise ValueError(f'mask_ratio={mask_ratio} must be in (0, 1).')
        self.input_size = size
        self.block_size = block_size
        self.token_stride = token_stride
        self.mask_ratio = mask_ratio
        self.grid = (size[0] // block_size, size[1] // block_size)
        n_blocks = self.grid[0] * self.grid[1]
        # round first so that e.g. 100 * 0.07 = 7.000000000000001 masks 7 blocks, not 8
        self.num_masked = math.ceil(round(n_blocks * mask_ratio, 6))
        if self.num_masked >= n_blocks:
            raise ValueError(
                f'mask_ratio={mask_ratio} of a {self.grid[0]}x{self.grid[1]} block grid '
                f'({size[0]}x{size[1]} px view, block_size={block_size}) masks '
                f'ceil({n_blocks} * {mask_ratio}) = {self.num_masked} of {n_blocks} blocks: '
                'the whole view, leaving nothing visible to reconstruct from. Lower mask_ratio '
                f'below {(n_blocks - 1) / n_blocks:.4f} or use a smaller block_size.')

    def transform(self, results: dict) -> dict:
        """Add ``results['mask']``; see the class docstring."""
        if 'img' in results and tuple(results['img'].shape[:2]) != self.input_size:
            raise ValueError(
                f"BlockMaskGenerator(input_size={self.input_size}) got an image of size "
                f"{tuple(results['img'].shape[:2])}; set input_size to the crop size.")
        n_blocks = self.grid[0] * self.grid[1]
        blocks = np.zeros(n_blocks, np.uint8)
        blocks[np.random.permutation(n_blocks)[:self.num_masked]] = 1
        tokens_per_block = self.block_size // self.token_stride
        mask = blocks.reshape(self.grid).repeat(tokens_per_block, 0).repeat(tokens_per_block, 1)
        results['mask'] = mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'block_size={self.block_size}, token_stride={self.token_stride}, '
                f'mask_ratio={self.mask_ratio})')
