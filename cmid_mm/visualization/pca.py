"""Dense features as colours: PCA of a feature map's pixels to RGB.

:func:`pca_rgb` of one ``(C, h, w)`` map is a function of that map alone. Given a batch
``(B, C, h, w)`` it fits one PCA on the pixels of all B maps (the point: one colour means one
kind of feature in every image), so each image's colours then depend on the other maps of the
batch and, by rounding, on their order (the pooled sums run in that order). Call it once per
map for colours that depend on the map alone. Given the fit, each map is projected and resized
on its own, so two equal maps in one batch get equal colours bit for bit.
"""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .image import ArrayLike, to_numpy


def pca_rgb(feat: ArrayLike,
            out_size: Optional[Tuple[int, int]] = None,
            mode: str = 'bilinear',
            return_variance: bool = False):
    """Project every feature-map pixel onto the 3 principal components of the map -> RGB.

    The PCA is fitted on the ``h * w`` pixels (``B * h * w`` for a batch: one PCA shared by
    all images, so equal colours mean similar features across images), each a C-dim vector,
    after subtracting their mean. Component k (k = 0, 1, 2 -> R, G, B) is then min-max scaled
    to [0, 1] over all pixels (a constant component becomes 0.5). The sign of each component is
    fixed so that its largest-magnitude projection is positive (deterministic colours).
    Finally the (h, w) map is resized to ``out_size``: ``'bilinear'`` (align_corners=False;
    a convex combination, so values stay in [0, 1]) or ``'nearest'`` (shows the cells).

    Args:
        feat: ``(C, h, w)`` or ``(B, C, h, w)`` feature map(s).
        out_size: ``(H, W)`` output size; default ``(h, w)``.
        mode: ``'bilinear'`` or ``'nearest'``.
        return_variance: also return the fraction of the variance each component explains.

    Returns:
        float32 ``(H, W, 3)`` (or ``(B, H, W, 3)`` for batched input) in [0, 1]; with
        ``return_variance`` a tuple ``(rgb, ratios)``, ``ratios`` of shape (3,).
    """
    x = to_numpy(feat).astype(np.float64)
    batched = x.ndim == 4
    if not batched:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f'pca_rgb expects a (C, h, w) or (B, C, h, w) feature map; got shape '
                         f'{to_numpy(feat).shape}')
    if mode not in ('bilinear', 'nearest'):
        raise ValueError(f"mode must be 'bilinear' or 'nearest'; got {mode!r}")
    b, c, h, w = x.shape
    pixels = x.transpose(0, 2, 3, 1).reshape(-1, c)
    pixels = pixels - pixels.mean(axis=0, keepdims=True)
    # principal directions = right singular vectors of the centred pixel matrix
    _, s, vt = np.linalg.svd(pixels, full_matrices=False)
    comps = np.zeros((3, c))
    k = min(3, vt.shape[0])
    comps[:k] = vt[:k]
    # Projected and resized one image at a time: given the fit, an image's colours are then
    # computed identically wherever it sits in the batch (one product over the whole batch
    # could round differently by row position).
    proj = np.concatenate([p @ comps.T for p in pixels.reshape(b, h * w, c)])  # (P, 3)
    for j in range(3):
        if np.abs(proj[:, j]).max() > 0 and proj[np.abs(proj[:, j]).argmax(), j] < 0:
            proj[:, j] *= -1
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    span = hi - lo
    rgb = np.where(span > 1e-12 * max(1.0, np.abs(proj).max()),
                   (proj - lo) / np.where(span > 0, span, 1), 0.5)
    rgb = torch.from_numpy(rgb.reshape(b, h, w, 3)).permute(0, 3, 1, 2).float()
    if out_size is not None and tuple(out_size) != (h, w):
        kwargs = dict(align_corners=False) if mode == 'bilinear' else {}
        rgb = torch.cat([F.interpolate(r[None], size=tuple(out_size), mode=mode, **kwargs)
                         for r in rgb])
    out = rgb.permute(0, 2, 3, 1).clamp_(0, 1).numpy()
    out = out if batched else out[0]
    if return_variance:
        var = s**2
        ratios = np.zeros(3)
        ratios[:k] = var[:k] / var.sum() if var.sum() > 0 else 0
        return out, ratios
    return out
