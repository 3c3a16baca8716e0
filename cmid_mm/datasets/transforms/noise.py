"""Additive Gaussian pixel noise of view B (CMID spec §2.2)."""
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

UINT8_MAX = 255.


@TRANSFORMS.register_module()
class RandomGaussianNoise(BaseTransform):
    """With probability ``prob``, add zero-mean Gaussian noise to every pixel and band.

    The variance is drawn uniformly from ``var_range`` once per call and is expressed on the
    0-255 scale of 8-bit images. How it applies to each dtype:

    - uint8: noise of variance ``var`` is added, the result is rounded and clipped to
      [0, 255].
    - uint16: the variance is scaled by ``(65535 / 255) ** 2`` (the same noise relative to the
      full range), the result is rounded and clipped to [0, 65535].
    - float: the image is taken to be on the 0-255 scale (as ``LoadImageFromFile(to_float32=
      True)`` gives) and ``var`` is used unchanged; the result is not clipped.

    **Required Keys:** ``img`` ``(H, W[, N])``. **Modified Keys:** ``img`` (same shape, dtype).

    Args:
        prob (float): Probability of adding noise, in [0, 1].
        var_range (tuple[float, float]): ``(min, max)`` noise variance, squared 8-bit levels.
    """

    def __init__(self, prob: float = 0.6, var_range: Tuple[float, float] = (10., 50.)) -> None:
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        if len(var_range) != 2 or not 0. <= var_range[0] <= var_range[1]:
            raise ValueError(
                f'var_range must be (min, max) with 0 <= min <= max, got {var_range}.')
        self.prob = prob
        self.var_range = tuple(float(v) for v in var_range)

    @cache_randomness
    def _rand_var(self) -> Optional[float]:
        """The variance (0-255 scale) of this call, or None to leave the image unchanged."""
        if np.random.rand() >= self.prob:
            return None
        return np.random.uniform(*self.var_range)

    def transform(self, results: dict) -> dict:
        """Add the noise to ``results['img']``; see the class docstring."""
        var = self._rand_var()
        if var is None:
            return results
        img = results['img']
        if img.dtype == np.uint8:
            std, limits = np.sqrt(var), (0, UINT8_MAX)
        elif img.dtype == np.uint16:
            top = float(np.iinfo(np.uint16).max)
            std, limits = np.sqrt(var) * top / UINT8_MAX, (0, top)
        elif np.issubdtype(img.dtype, np.floating):
            std, limits = np.sqrt(var), None
        else:
            raise TypeError(f'RandomGaussianNoise supports uint8, uint16 and float images, got '
                            f'dtype {img.dtype}; convert the image first.')
        noisy = img.astype(np.float32) + np.random.normal(0., std, img.shape).astype(np.float32)
        if limits is not None:
            noisy = np.clip(np.round(noisy), *limits)
        results['img'] = noisy.astype(img.dtype)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, var_range={self.var_range})'
