"""Array helpers shared by the visualisations: de-normalisation, labelled grids, colours.

Every function returns numpy arrays (``uint8`` RGB ``(H, W, 3)`` unless said otherwise); writing
files is left to the tools, so tests can check the pixels.
"""
import colorsys
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

TITLE_HEIGHT = 14  # px of the title band above every grid panel
PAD = 4  # px between grid panels (and around the grid)
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A CPU numpy copy of a tensor (any device / dtype) or an array."""
    if torch.is_tensor(x):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def channel_stats(data_preprocessor) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` (each ``(N,)`` float64) the data preprocessor normalises with.

    Works with mmpretrain's ``SelfSupDataPreprocessor`` / mmengine's ``ImgDataPreprocessor``
    (``mean`` / ``std`` buffers of shape ``(N, 1, 1)``); a preprocessor that does not
    normalise gives mean 0 and std 1.
    """
    if not getattr(data_preprocessor, '_enable_normalize', False):
        return np.zeros(1), np.ones(1)
    mean = to_numpy(data_preprocessor.mean).reshape(-1).astype(np.float64)
    std = to_numpy(data_preprocessor.std).reshape(-1).astype(np.float64)
    return mean, std


def denormalize(img: ArrayLike,
                mean: Sequence[float],
                std: Sequence[float],
                bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Undo ``(x - mean) / std`` of a ``(N, H, W)`` image and make it displayable.

    Args:
        img: ``(N, H, W)`` normalised image (channel order as the model sees it, i.e. RGB
            after the preprocessor's ``to_rgb``).
        mean, std: per-channel statistics of the normalisation on the 0-255 scale (length N,
            or 1 for all channels).
        bands: the three channels shown as R, G, B (default: the first three; a 1- or
            2-channel image shows its first channel as grey).

    Returns:
        ``(H, W, 3)`` uint8: ``round(clip(x * std + mean, 0, 255))`` of the chosen bands.
    """
    x = to_numpy(img).astype(np.float64)
    if x.ndim != 3:
        raise ValueError(f'denormalize expects a (N, H, W) image; got shape {x.shape}')
    n = x.shape[0]
    mean = np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (n, )) \
        if np.size(mean) in (1, n) else None
    std = np.broadcast_to(np.asarray(std, np.float64).reshape(-1), (n, )) \
        if np.size(std) in (1, n) else None
    if mean is None or std is None:
        raise ValueError(f'the image has {n} channels but the data preprocessor mean/std have '
                         f'{np.size(mean)}/{np.size(std)} values: they must match')
    x = x * std[:, None, None] + mean[:, None, None]
    if bands is None:
        bands = (0, 1, 2) if n >= 3 else (0, 0, 0)
    bands = list(bands)
    if len(bands) != 3 or not all(0 <= b < n for b in bands):
        raise ValueError(f'bands must be 3 channel indices in [0, {n - 1}]; got {bands}')
    x = x[bands].transpose(1, 2, 0)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def float_to_uint8(img: np.ndarray) -> np.ndarray:
    """``[0, 1]`` floats to uint8 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(img, np.float64) * 255), 0, 255).astype(np.uint8)


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (pixels stay exact)."""
    if factor == 1:
        return img
    if factor < 1 or int(factor) != factor:
        raise ValueError(f'upscale factor must be a positive integer; got {factor}')
    return img.repeat(factor, axis=0).repeat(factor, axis=1)


def palette(n: int) -> List[Tuple[int, int, int]]:
    """``n`` distinct saturated RGB colours (evenly spaced hues)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.9, 1.0)
        out.append((int(round(r * 255)), int(round(g * 255)), int(round(b * 255))))
    return out


def put_text(img: np.ndarray, text: str, origin: Tuple[int, int],
             colour: Tuple[int, int, int] = TEXT_COLOUR, scale: float = 0.35) -> None:
    """Draw a short label in place (cv2 Hershey font; ``origin`` = bottom-left x, y)."""
    cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def titled_grid(rows: Sequence[Sequence[Tuple[str, np.ndarray]]],
                pad: int = PAD,
                title_height: int = TITLE_HEIGHT) -> np.ndarray:
    """Arrange ``(title, image)`` panels in rows on a white canvas, a title above each.

    All panels of a row share the row's height (the tallest; shorter ones are top-aligned);
    columns are as wide as their widest panel. Panel ``(i, j)`` of sizes ``h_i`` x ``w_j``
    starts at ``x = pad + sum(w_<j + pad)``, ``y = pad + sum(h_<i + title_height + pad) +
    title_height``, so the canvas is ``pad + sum(h_i + title_height + pad)`` high and
    ``pad + sum(w_j + pad)`` wide.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    if not rows or not all(rows):
        raise ValueError('titled_grid needs at least one non-empty row of panels')
    n_cols = max(len(r) for r in rows)
    heights = [max(img.shape[0] for _, img in r) for r in rows]
    widths = [max(r[j][1].shape[1] for r in rows if j < len(r)) for j in range(n_cols)]
    canvas = np.full((pad + sum(h + title_height + pad for h in heights),
                      pad + sum(w + pad for w in widths), 3), BACKGROUND, np.uint8)
    y = pad
    for row, h in zip(rows, heights):
        x = pad
        for (title, img), w in zip(row, widths):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f'panel {title!r} must be a (H, W, 3) uint8 image; got '
                                 f'{img.dtype} {img.shape}')
            put_text(canvas, title, (x + 1, y + title_height - 4))
            canvas[y + title_height:y + title_height + img.shape[0],
                   x:x + img.shape[1]] = img
            x += w + pad
        y += h + title_height + pad
    return canvas
