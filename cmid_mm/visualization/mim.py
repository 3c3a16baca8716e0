"""Masked image modelling pictures: masked input / reconstruction / target of each view."""
from contextlib import contextmanager
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from mmpretrain.structures import DataSample

from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask
from .image import ArrayLike, denormalize, titled_grid, to_numpy, upscale

MASK_EDGE_COLOUR = (255, 255, 0)  # outline of the masked blocks in the 'rec. + visible' panel
PANEL_TITLES = ('target', 'masked input', 'reconstruction', 'rec. + visible')


@contextmanager
def eval_mode(module: torch.nn.Module):
    """Switch every submodule to eval mode (BN uses its running statistics and is not
    updated, no drop path) and restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def mim_reconstruct(model, views: Sequence[torch.Tensor], masks, return_feats: bool = False):
    """The student's reconstructions of its masked views: ``model.reconstruct`` (CMID's own
    masked forward, exactly as ``CMID.loss`` runs it) without gradients.

    Runs in the model's current mode; wrap it in :func:`eval_mode` to leave BN statistics
    untouched.

    Args:
        model: a built ``CMID``.
        views: the two normalised views, each ``(B, N, H, W)``.
        masks: the batch's data samples (with ``mask``), or a ``(B, 2, h, w)`` tensor of token
            masks, 1 = masked.

    Returns:
        Two reconstructions ``(B, N, H, W)`` in the normalised space; with ``return_feats`` a
        tuple ``(recons, feats)``, ``feats`` the two last-stage maps of the masked views.
    """
    if isinstance(masks, torch.Tensor):
        masks = [DataSample().set_mask(m) for m in masks]
    return model.reconstruct(list(views), masks, return_feats=return_feats)


def _mask_edges(pixel_mask: np.ndarray) -> np.ndarray:
    """Pixels of the masked region that touch an unmasked pixel or the border (4-neighbours)."""
    m = pixel_mask.astype(bool)
    padded = np.pad(m, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return m & ~inner


def mim_panels(view: ArrayLike,
               mask: ArrayLike,
               recon: ArrayLike,
               mean: Sequence[float],
               std: Sequence[float],
               bands: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
    """The four MIM panels of one view, de-normalised with the data preprocessor's statistics.

    Args:
        view: ``(N, H, W)`` normalised view (the reconstruction target).
        mask: ``(h, w)`` token mask (1 = masked) on a grid dividing ``(H, W)``, or ``(H, W)``.
        recon: ``(N, H, W)`` the student's reconstruction (normalised space).
        mean, std: the data preprocessor's per-channel statistics (0-255 scale).
        bands: channels shown as RGB (default the first three).

    Returns:
        dict of ``(H, W, 3)`` uint8 images and the ``(H, W)`` bool ``pixel_mask``:

        - ``target``: the view;
        - ``masked``: the student's input, masked pixels filled with the view's per-channel
          mean (computed by :func:`cmid_mm.models.utils.mean_fill.mean_fill`, as in training);
        - ``recon``: the whole reconstruction (clipped to 0-255);
        - ``composite``: the reconstruction where masked, the view elsewhere, with the edges
          of the masked blocks drawn in yellow.
    """
    view_t = torch.as_tensor(to_numpy(view), dtype=torch.float32)
    recon_np = to_numpy(recon)
    if view_t.dim() != 3 or recon_np.shape != tuple(view_t.shape):
        raise ValueError(f'view and recon must both be (N, H, W); got {tuple(view_t.shape)} and '
                         f'{recon_np.shape}')
    pixel_mask = upsample_mask(torch.as_tensor(to_numpy(mask))[None], view_t.shape[-2:])[0]
    masked = mean_fill(view_t[None], pixel_mask[None])[0]
    pm = pixel_mask[0].numpy().astype(bool)
    target = denormalize(view_t, mean, std, bands)
    rec = denormalize(recon_np, mean, std, bands)
    composite = np.where(pm[..., None], rec, target)
    composite[_mask_edges(pm)] = MASK_EDGE_COLOUR
    return dict(target=target, masked=denormalize(masked, mean, std, bands), recon=rec,
                composite=composite, pixel_mask=pm)


def mim_grid(views: Sequence[ArrayLike],
             masks: ArrayLike,
             recons: Sequence[ArrayLike],
             mean: Sequence[float],
             std: Sequence[float],
             bands: Optional[Sequence[int]] = None,
             flips: Optional[ArrayLike] = None,
             scale: int = 1,
             names: Sequence[str] = ('A', 'B')) -> np.ndarray:
    """A grid with one row per view of one image: target | masked input | reconstruction |
    reconstruction pasted into the masked blocks of the target.

    Args:
        views: V normalised views of one image, each ``(N, H, W)``.
        masks: ``(V, h, w)`` token masks (1 = masked).
        recons: V reconstructions ``(N, H, W)``.
        mean, std, bands: see :func:`mim_panels`.
        flips: ``(V,)`` flip flags, only used in the row titles.
        scale: integer nearest-neighbour enlargement of every panel.
        names: view names used in the titles.

    Returns:
        ``(H', W', 3)`` uint8, laid out by :func:`cmid_mm.visualization.image.titled_grid`
        (V rows x 4 columns of ``(H * scale, W * scale)`` panels).
    """
    masks = to_numpy(masks)
    if len(views) != len(recons) or len(views) != len(masks):
        raise ValueError(f'got {len(views)} views, {len(masks)} masks and {len(recons)} '
                         'reconstructions: one of each per view')
    rows = []
    for v, (view, recon) in enumerate(zip(views, recons)):
        p = mim_panels(view, masks[v], recon, mean, std, bands)
        name = names[v] if v < len(names) else str(v)
        flipped = flips is not None and bool(to_numpy(flips)[v])
        label = f'{name}{" (flip)" if flipped else ""}'
        rows.append([(f'{label} {title}' if j == 0 else title, upscale(p[key], scale))
                     for j, (title, key) in enumerate(zip(
                         PANEL_TITLES, ('target', 'masked', 'recon', 'composite')))])
    return titled_grid(rows)
