"""Photometric augmentations that are valid for any number of bands and any pixel type.

mmpretrain's ``ColorJitter`` (saturation, hue), ``Solarize`` (threshold 128), ``RandomGrayscale``
(RGB weights) and ``GaussianBlur`` (a Pillow image) assume 8-bit RGB and fail or do something
meaningless on 13-band uint16 data. These replacements treat every band alike, keep the shape
and dtype, and draw their randomness with ``np.random`` (so ``PerSampleSeed`` makes them
reproducible). See docs/multispectral.md for which transform suits which data.
"""
from typing import Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

CV2_MAX_CHANNELS = 4  # cv2 filters 1-4 channels at once; more are done in groups


def _range(name: str, value: float) -> Tuple[float, float]:
    if not 0. <= value < 1.:
        raise ValueError(f'{name}={value} must be in [0, 1): factors are drawn from '
                         f'[1 - {name}, 1 + {name}]')
    return 1. - value, 1. + value


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip integer images to their dtype's range; floats unchanged."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.round(values), info.min, info.max)
    return values.astype(dtype)


@TRANSFORMS.register_module()
class RandomBandGainJitter(BaseTransform):
    """Multiplicative brightness and contrast jitter, per band, for any band count and dtype.

    With probability ``prob``, each band ``b`` of the image becomes::

        out_b = (x_b - m_b) * c * cj_b + m_b * g * gj_b

    where ``m_b`` is the band's mean in this image, ``g ~ U(1 - brightness, 1 + brightness)`` and
    ``c ~ U(1 - contrast, 1 + contrast)`` are shared by all bands (a change of illumination /
    haze keeps the spectral shape), and ``gj_b, cj_b ~ U(1 - band_jitter, 1 + band_jitter)`` are
    drawn per band (small sensor / atmosphere differences between bands). No colour-space
    operation is involved, so it is valid for 1, 3, 4, 13, ... bands. Integer images are
    rounded and clipped to their dtype's range (uint16: 0-65535, not Sentinel-2's 0-10000
    convention, so bright pixels may exceed 10000); float images are not clipped.

    **Required Keys:** ``img`` ``(H, W[, N])``. **Modified Keys:** ``img`` (same shape, dtype).

    Args:
        prob (float): probability of applying the jitter.
        brightness (float): shared brightness factor range ``[1 - b, 1 + b]``.
        contrast (float): shared contrast factor range ``[1 - c, 1 + c]``.
        band_jitter (float): per-band extra factor range ``[1 - j, 1 + j]`` for both.
    """

    def __init__(self, prob: float = 0.8, brightness: float = 0.4, contrast: float = 0.4,
                 band_jitter: float = 0.1) -> None:
        if not 0. <= prob <= 1.:
            raise ValueError(f'RandomBandGainJitter: prob={prob} must be in [0, 1]')
        self.prob = prob
        self.brightness = _range('brightness', brightness)
        self.contrast = _range('contrast', contrast)
        self.band_jitter = _range('band_jitter', band_jitter)

    @cache_randomness
    def _rand_factors(self, bands: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(gain, contrast) factors per band, or None to leave the image unchanged."""
        if np.random.rand() >= self.prob:
            return None
        g = np.random.uniform(*self.brightness)
        c = np.random.uniform(*self.contrast)
        gains = g * np.random.uniform(*self.band_jitter, size=bands)
        contrasts = c * np.random.uniform(*self.band_jitter, size=bands)
        return gains, contrasts

    def transform(self, results: dict) -> dict:
        img = results['img']
        cube = img[..., None] if img.ndim == 2 else img
        factors = self._rand_factors(cube.shape[2])
        if factors is None:
            return results
        gains, contrasts = factors
        x = cube.astype(np.float32)
        mean = x.mean(axis=(0, 1), keepdims=True)
        out = (x - mean) * contrasts.astype(np.float32) + mean * gains.astype(np.float32)
        out = _to_dtype(out, img.dtype)
        results['img'] = out[..., 0] if img.ndim == 2 else out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, brightness={self.brightness}, '
                f'contrast={self.contrast}, band_jitter={self.band_jitter})')


@TRANSFORMS.register_module()
class RandomBandGaussianBlur(BaseTransform):
    """Gaussian blur with one random sigma for all bands, any band count and dtype.

    With probability ``prob``, ``sigma ~ U(*sigma_range)`` (pixels) and every band is filtered
    with OpenCV's ``GaussianBlur`` (kernel ``2 * ceil(3 * sigma) + 1``, reflected borders), in
    groups of at most 4 bands (what cv2 filters at once). uint8 / uint16 stay integer (cv2
    rounds), float32 stays float.

    **Required Keys:** ``img`` ``(H, W[, N])``. **Modified Keys:** ``img`` (same shape, dtype).

    Args:
        prob (float): probability of blurring.
        sigma_range (tuple[float, float]): ``(min, max)`` standard deviation in pixels.
    """

    def __init__(self, prob: float = 0.5,
                 sigma_range: Tuple[float, float] = (0.1, 2.0)) -> None:
        if not 0. <= prob <= 1.:
            raise ValueError(f'RandomBandGaussianBlur: prob={prob} must be in [0, 1]')
        if len(sigma_range) != 2 or not 0. < sigma_range[0] <= sigma_range[1]:
            raise ValueError(f'RandomBandGaussianBlur: sigma_range={sigma_range} must be '
                             '(min, max) with 0 < min <= max')
        self.prob = prob
        self.sigma_range = tuple(float(s) for s in sigma_range)

    @cache_randomness
    def _rand_sigma(self) -> Optional[float]:
        if np.random.rand() >= self.prob:
            return None
        return float(np.random.uniform(*self.sigma_range))

    def transform(self, results: dict) -> dict:
        sigma = self._rand_sigma()
        if sigma is None:
            return results
        img = results['img']
        if img.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
            raise TypeError(f'RandomBandGaussianBlur: dtype {img.dtype} is not supported; use '
                            'uint8, uint16, int16 or float images')
        k = 2 * int(np.ceil(3 * sigma)) + 1
        cube = img[..., None] if img.ndim == 2 else img
        parts = []
        for start in range(0, cube.shape[2], CV2_MAX_CHANNELS):
            chunk = np.ascontiguousarray(cube[..., start:start + CV2_MAX_CHANNELS])
            out = cv2.GaussianBlur(chunk, (k, k), sigmaX=sigma, sigmaY=sigma,
                                   borderType=cv2.BORDER_REFLECT_101)
            parts.append(out.reshape(chunk.shape))
        out = np.concatenate(parts, axis=2)
        results['img'] = out[..., 0] if img.ndim == 2 else out
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, sigma_range={self.sigma_range})'
