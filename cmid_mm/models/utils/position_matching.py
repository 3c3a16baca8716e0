"""Position matching of feature-map cells between two crops of one image.

See docs/method.md §2.6 (crop geometry) and §5.3 (matching).

Each cell of a view's (h, w) output map covers a rectangle of its crop; its centre in source
image pixels is known from the crop box and the flip. ``L_local`` compares student cells with
the teacher cells of the other view that are nearest in the source image.
"""
from typing import List, Optional, Tuple

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
        reference_offsets: reproduce the reference code's crop-offset bug (docs/method.md
            §2.6), see :func:`reference_cell_axis`.

    Returns:
        (B, h * w, 2) float32 cell centres (y, x).
    """
    if crop_bbox.dim() != 2 or crop_bbox.shape[1] != 4:
        raise ValueError(f'crop_bbox must be (B, 4) [top, left, height, width]; got '
                         f'{tuple(crop_bbox.shape)}')
    if flip.shape != crop_bbox.shape[:1]:
        raise ValueError(f'flip must be (B,) = ({crop_bbox.shape[0]},); got {tuple(flip.shape)}')
    h, w = grid_hw
    if reference_offsets:
        if src_shape is None:
            raise ValueError('reference_offsets=True needs src_shape (B, 2) [H, W] of the '
                             'source images')
        if src_shape.shape != crop_bbox.shape[:1] + (2, ):
            raise ValueError(f'src_shape must be (B, 2) = ({crop_bbox.shape[0]}, 2) [H, W]; '
                             f'got {tuple(src_shape.shape)}')
        top, left, height, width = crop_bbox.double().unbind(dim=1)
        ys = reference_cell_axis(top, height, src_shape[:, 0].double(), h)  # (B, h)
        xs = reference_cell_axis(left, width, src_shape[:, 1].double(), w)  # (B, w)
        # The reference mirrors the finished columns of a flipped view.
        xs = torch.where(flip.bool()[:, None], xs.flip(1), xs)
    else:
        top, left, height, width = crop_bbox.float().unbind(dim=1)
        rows = torch.arange(h, dtype=torch.float32, device=crop_bbox.device) + 0.5
        cols = torch.arange(w, dtype=torch.float32, device=crop_bbox.device)
        cols = torch.where(flip.bool()[:, None], w - 1 - cols, cols) + 0.5  # (B, w)
        ys = top[:, None] + rows[None] * (height / h)[:, None]  # (B, h)
        xs = left[:, None] + cols * (width / w)[:, None]  # (B, w)
    centers = torch.stack(torch.broadcast_tensors(ys[:, :, None], xs[:, None, :]), dim=-1)
    return centers.flatten(1, 2)


def reference_cell_axis(offset: torch.Tensor, size: torch.Tensor, src_size: torch.Tensor,
                        n: int) -> torch.Tensor:
    """Cell centres along one axis as the reference code computes them (its offset bug).

    The reference stores the crop offset the way albumentations' crop parameters do: as the
    fraction of the free range, ``offset / (src_size - size + 1e-10)`` (a Python float, so
    float64; 0 for a crop as large as the image), and then uses that fraction as if it were
    a pixel offset. Its cell centres are written into a float32 grid: the first one is
    ``fraction + size / n / 2`` (sum in float64, rounded once to float32) and every next one
    adds ``size / n`` (rounded to float32) to the previous float32 value. The values here are
    the same float32 numbers, bit for bit: the fraction and the first centre in float64, the
    running sum in float32 (scalar IEEE operations, no reduction kernel involved).

    Args:
        offset: (B,) crop top (or left) in source pixels.
        size: (B,) crop height (or width) in source pixels.
        src_size: (B,) source image height (or width) in pixels.
        n: number of cells along the axis.

    Returns:
        (B, n) float32 centres, in increasing order (not yet mirrored for flips).
    """
    offset, size, src_size = offset.double(), size.double(), src_size.double()
    fraction = offset / (src_size - size + 1e-10)
    step = size / n
    centres = [(fraction + step / 2).float()]
    step = step.float()
    for _ in range(1, n):
        centres.append(centres[-1] + step)
    return torch.stack(centres, dim=1)


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


#: The two directions of ``L_local``: (student view, teacher view), A = 0, B = 1.
DIRECTIONS = ((0, 1), (1, 0))


def view_cell_centers(crop_bbox: torch.Tensor,
                      flip: torch.Tensor,
                      grid_hw: Tuple[int, int],
                      src_shape: Optional[torch.Tensor] = None,
                      reference_offsets: bool = False) -> torch.Tensor:
    """:func:`cell_centers` of every view: ``(B, V, 4)`` boxes, ``(B, V)`` flips and (with
    ``reference_offsets``) ``(B, V, 2)`` source shapes give ``(B, V, h * w, 2)`` centres."""
    if crop_bbox.dim() != 3:
        raise ValueError(f'crop_bbox must be (B, V, 4) [top, left, height, width] per view; '
                         f'got {tuple(crop_bbox.shape)}')
    return torch.stack([
        cell_centers(crop_bbox[:, v], flip[:, v], grid_hw,
                     src_shape[:, v] if src_shape is not None else None, reference_offsets)
        for v in range(crop_bbox.shape[1])
    ], dim=1)


def match_views(centers: torch.Tensor,
                num_matches: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """The matched cells of both directions of ``L_local`` (:data:`DIRECTIONS`).

    Args:
        centers: ``(B, 2, N, 2)`` cell centres of views A and B (:func:`view_cell_centers`).
        num_matches: student cells kept per direction.

    Returns:
        ``[(idx_a, idx_b), (idx_b, idx_a)]``: per direction the ``(B, n)`` student-cell and
        teacher-cell indices (A student first, then B student), from :func:`match_cells`.
    """
    if centers.dim() != 4 or centers.shape[1] != 2:
        raise ValueError(f'centers must be (B, 2, N, 2) for views A and B; got '
                         f'{tuple(centers.shape)}')
    return [match_cells(centers[:, s], centers[:, t], num_matches) for s, t in DIRECTIONS]
