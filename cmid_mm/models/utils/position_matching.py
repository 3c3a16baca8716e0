"""Position matching of feature-map cells between two crops of one image (spec §2.6, §5).

Each cell of a view's (h, w) output map covers a rectangle of its crop; its centre in source
image pixels is known from the crop box and the flip. ``L_local`` compares student cells with
the teacher cells of the other view that are nearest in the source image.
"""
from typing import Optional, Tuple

import torch


def cell_centers(crop_bbox: torch.Tensor,
                 flip: torch.Tensor,
                 grid_hw: Tuple[int, int],
                 src_shape: Optional[torch.Tensor] = None,
                 reference_offsets: bool = False) -> torch.Tensor:
    """Source-image centres of the cells of a view's output map.

    Cell (r, c) of an (h, w) map covers ``height / h`` x ``width / w`` source pixels; its
    centre is ``(top + (r + 0.5) * height / h, left + (c' + 0.5) * width / w)`` with
    ``c' = c``, or ``c' = w - 1 - c`` for a flipped view. Cells are flattened row-major
    (index ``r * w + c``, as ``feat.flatten(2)`` of a (B, C, h, w) map).

    Args:
        crop_bbox: (B, 4) [top, left, height, width] of each crop, in source pixels.
        flip: (B,) bool, the view was flipped horizontally after cropping.
        grid_hw: (h, w) size of the output map.
        src_shape: (B, 2) [H, W] of each source image in pixels; only needed (and only used)
            with ``reference_offsets``.
        reference_offsets: reproduce the reference code's bug (spec §2.6): the offsets become
            fractions ``top / H`` and ``left / W`` while the cell sizes stay in pixels.

    Returns:
        (B, h * w, 2) float32 cell centres (y, x).
    """
    if crop_bbox.dim() != 2 or crop_bbox.shape[1] != 4:
        raise ValueError(f'crop_bbox must be (B, 4) [top, left, height, width]; got '
                         f'{tuple(crop_bbox.shape)}')
    if flip.shape != crop_bbox.shape[:1]:
        raise ValueError(f'flip must be (B,) = ({crop_bbox.shape[0]},); got {tuple(flip.shape)}')
    h, w = grid_hw
    top, left, height, width = crop_bbox.float().unbind(dim=1)
    if reference_offsets:
        if src_shape is None:
            raise ValueError('reference_offsets=True needs src_shape (B, 2) [H, W] of the '
                             'source images')
        src_shape = src_shape.float()
        top, left = top / src_shape[:, 0], left / src_shape[:, 1]
    rows = torch.arange(h, dtype=torch.float32, device=crop_bbox.device) + 0.5
    cols = torch.arange(w, dtype=torch.float32, device=crop_bbox.device)
    cols = torch.where(flip.bool()[:, None], w - 1 - cols, cols) + 0.5  # (B, w)
    ys = top[:, None] + rows[None] * (height / h)[:, None]  # (B, h)
    xs = left[:, None] + cols * (width / w)[:, None]  # (B, w)
    centers = torch.stack(torch.broadcast_tensors(ys[:, :, None], xs[:, None, :]), dim=-1)
    return centers.flatten(1, 2)


def match_cells(centers_q: torch.Tensor,
                centers_k: torch.Tensor,
                num_matches: int = 20) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pair the query cells closest to the key view with their nearest key cells.

    For every query cell the nearest key cell is found (Euclidean distance in source pixels,
    ties to the lower key index); the ``num_matches`` query cells with the smallest such
    distance are kept (ties to the lower query index) and returned in ascending query index.

    Args:
        centers_q: (B, L, 2) query (student) cell centres, e.g. from :func:`cell_centers`.
        centers_k: (B, L2, 2) key (teacher) cell centres of the other view.
        num_matches: number of kept query cells n (<= L).

    Returns:
        idx_q: (B, n) long, kept query cells (ascending).
        idx_k: (B, n) long, the key cell matched to each of them.
    """
    if centers_q.dim() != 3 or centers_k.dim() != 3 or centers_q.shape[0] != centers_k.shape[0]:
        raise ValueError(f'centers_q and centers_k must be (B, L, 2) and (B, L2, 2); got '
                         f'{tuple(centers_q.shape)} and {tuple(centers_k.shape)}')
    if not 0 < num_matches <= centers_q.shape[1]:
        raise ValueError(f'num_matches must be in [1, {centers_q.shape[1]}] (number of query '
                         f'cells); got {num_matches}')
    # Explicit differences (not cdist's matmul form) so that equal distances stay equal.
    diff = centers_q.float()[:, :, None] - centers_k.float()[:, None]
    sq_dist = diff.pow(2).sum(dim=-1)  # (B, L, L2)
    nearest_dist, nearest = sq_dist.min(dim=2)
    order = nearest_dist.argsort(dim=1, stable=True)[:, :num_matches]
    idx_q = order.sort(dim=1).values
    return idx_q, nearest.gather(1, idx_q)


def gather_cells(feat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Features of selected cells.

    Args:
        feat: (B, C, h, w) feature map.
        idx: (B, n) long, row-major cell indices ``r * w + c``.

    Returns:
        (B, C, n).
    """
    flat = feat.flatten(2)
    return flat.gather(2, idx[:, None, :].expand(-1, flat.shape[1], -1))
