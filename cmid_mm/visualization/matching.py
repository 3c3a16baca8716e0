"""Local matching pictures: which cells of view A are compared with which cells of view B.

The pairs are exactly those of ``CMID.loss``: ``CMID.match`` for a model's batch, or
:func:`matched_pairs` for arrays, both :func:`cmid_mm.models.utils.position_matching.
view_cell_centers` on the crop boxes / flips recorded by the pipeline, then ``match_views``. Views
are drawn as the network sees them (a flipped view appears mirrored), and cell ``r * w + c`` of
a view's (h, w) feature map covers rows ``r * H / h ...`` and columns ``c * W / w ...`` of
the drawn view, flipped or not (the flip is already in the pixels; ``cell_centers`` mirrors
the column only to find the cell's place in the *source* image).
"""
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from cmid_mm.models.utils.position_matching import match_views, view_cell_centers
from .image import ArrayLike, palette, to_numpy, upscale

GAP = 12  # px between the two views of a match picture
BOX_COLOURS = ((255, 64, 64), (64, 160, 255))  # crop boxes of views A and B on the source


def matched_pairs(crop_bbox: ArrayLike,
                  flip: ArrayLike,
                  grid_hw: Tuple[int, int],
                  num_matches: int,
                  src_shape: Optional[ArrayLike] = None,
                  reference_offsets: bool = False) -> Dict[str, np.ndarray]:
    """The matched cells of both directions of ``L_local`` for one image.

    Args:
        crop_bbox: ``(2, 4)`` [top, left, height, width] of views A and B, source pixels.
        flip: ``(2,)`` horizontal-flip flags of A and B.
        grid_hw: ``(h, w)`` of the last feature map.
        num_matches: cells kept per direction (``model.num_matches``).
        src_shape, reference_offsets: as in ``cell_centers`` (the reference-bug mode).

    Returns:
        ``a_to_b``: ``(n, 2)`` int64 ``[cell of A, cell of B]``, A the student (query) side;
        ``b_to_a``: ``(n, 2)`` int64 ``[cell of A, cell of B]``, B the student side;
        ``centres``: ``(2, h * w, 2)`` float32 cell centres (y, x) in source pixels.
    """
    boxes = torch.as_tensor(to_numpy(crop_bbox), dtype=torch.float32).reshape(1, 2, 4)
    flips = torch.as_tensor(to_numpy(flip)).reshape(1, 2).bool()
    src = None if src_shape is None else \
        torch.as_tensor(to_numpy(src_shape), dtype=torch.float32).reshape(1, 2, 2)
    centres = view_cell_centers(boxes, flips, tuple(grid_hw), src, reference_offsets)
    return pairs_dict(match_views(centres, num_matches), centres, 0)


def pairs_dict(matches, centres: torch.Tensor, i: int = 0) -> Dict[str, np.ndarray]:
    """The ``a_to_b`` / ``b_to_a`` / ``centres`` arrays of :func:`matched_pairs` for sample
    ``i`` of ``CMID.match``'s output ``[(idx_a, idx_b), (idx_b, idx_a)]`` and
    ``CMID.cell_centres``'s ``(B, 2, h * w, 2)`` centres."""
    (qa, kb), (qb, ka) = matches
    return dict(a_to_b=torch.stack([qa[i], kb[i]], 1).cpu().numpy(),
                b_to_a=torch.stack([ka[i], qb[i]], 1).cpu().numpy(),
                centres=centres[i].cpu().numpy())


def cell_box(idx: int, grid_hw: Tuple[int, int], view_hw: Tuple[int, int],
             scale: int = 1) -> Tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (inclusive) of cell ``idx`` in the drawn view."""
    (h, w), (H, W) = grid_hw, view_hw
    r, c = divmod(int(idx), w)
    y0, y1 = r * H * scale // h, (r + 1) * H * scale // h - 1
    x0, x1 = c * W * scale // w, (c + 1) * W * scale // w - 1
    return x0, y0, x1, y1


def cell_point(idx: int, grid_hw: Tuple[int, int], view_hw: Tuple[int, int],
               scale: int = 1) -> Tuple[int, int]:
    """Pixel ``(x, y)`` of the centre of cell ``idx`` in the drawn view:
    ``floor((c + 0.5) * W * scale / w)``, ``floor((r + 0.5) * H * scale / h)``."""
    (h, w), (H, W) = grid_hw, view_hw
    r, c = divmod(int(idx), w)
    return int(np.floor((c + 0.5) * W * scale / w)), int(np.floor((r + 0.5) * H * scale / h))


def match_segments(pairs: ArrayLike, grid_hw: Tuple[int, int], view_hw: Tuple[int, int],
                   scale: int = 1, gap: int = GAP) -> np.ndarray:
    """``(n, 4)`` int ``(xa, ya, xb, yb)``: canvas pixels of the lines of :func:`draw_matches`.

    View A occupies canvas columns ``[0, W * scale)``, view B starts at ``W * scale + gap``.
    """
    pairs = to_numpy(pairs).astype(np.int64).reshape(-1, 2)
    offset = view_hw[1] * scale + gap
    out = []
    for a, b in pairs:
        xa, ya = cell_point(a, grid_hw, view_hw, scale)
        xb, yb = cell_point(b, grid_hw, view_hw, scale)
        out.append((xa, ya, xb + offset, yb))
    return np.asarray(out, np.int64).reshape(-1, 4)


def draw_matches(view_a: np.ndarray,
                 view_b: np.ndarray,
                 pairs: ArrayLike,
                 grid_hw: Tuple[int, int],
                 scale: int = 1,
                 gap: int = GAP) -> np.ndarray:
    """Views A and B side by side; matched cells outlined and joined, one colour per pair.

    Drawing order: every pair's two cell outlines, then every line (1 px, not anti-aliased),
    then a filled dot (radius 2) at each line end; pair k uses ``palette(n)[k]``.

    Args:
        view_a, view_b: ``(H, W, 3)`` uint8 views as the network sees them.
        pairs: ``(n, 2)`` ``[cell of A, cell of B]`` (from :func:`matched_pairs`).
        grid_hw: ``(h, w)`` of the feature map.
        scale: integer nearest-neighbour enlargement of the views.
        gap: px of white between the views.

    Returns:
        ``(H * scale, 2 * W * scale + gap, 3)`` uint8.
    """
    if view_a.shape != view_b.shape or view_a.ndim != 3 or view_a.dtype != np.uint8:
        raise ValueError(f'views must be two (H, W, 3) uint8 images of one size; got '
                         f'{view_a.dtype} {view_a.shape} and {view_b.dtype} {view_b.shape}')
    view_hw = view_a.shape[:2]
    a, b = upscale(view_a, scale), upscale(view_b, scale)
    height, width = a.shape[:2]
    canvas = np.full((height, 2 * width + gap, 3), 255, np.uint8)
    canvas[:, :width], canvas[:, width + gap:] = a, b
    pairs = to_numpy(pairs).astype(np.int64).reshape(-1, 2)
    colours = palette(len(pairs))
    segs = match_segments(pairs, grid_hw, view_hw, scale, gap)
    for (ia, ib), col in zip(pairs, colours):
        x0, y0, x1, y1 = cell_box(ia, grid_hw, view_hw, scale)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), col, 1)
        x0, y0, x1, y1 = cell_box(ib, grid_hw, view_hw, scale)
        cv2.rectangle(canvas, (x0 + width + gap, y0), (x1 + width + gap, y1), col, 1)
    for (xa, ya, xb, yb), col in zip(segs, colours):
        cv2.line(canvas, (int(xa), int(ya)), (int(xb), int(yb)), col, 1, cv2.LINE_8)
    for (xa, ya, xb, yb), col in zip(segs, colours):
        cv2.circle(canvas, (int(xa), int(ya)), 2, col, -1, cv2.LINE_8)
        cv2.circle(canvas, (int(xb), int(yb)), 2, col, -1, cv2.LINE_8)
    return canvas


def draw_source(src: np.ndarray,
                crop_bbox: ArrayLike,
                centres: ArrayLike,
                pairs: ArrayLike,
                height: Optional[int] = None) -> np.ndarray:
    """The source image with the crop boxes of A (red) and B (blue) and, for every pair, the
    source-pixel centres of its two cells (dot = A's cell, ring = B's cell) joined by a line.

    Good matches are short lines; with ``reference_offsets`` (the reference bug) they can be
    long. ``height`` resizes the picture (bilinear) to that many rows, keeping the aspect.

    Returns:
        ``(height, round(W * height / H), 3)`` uint8 (default: the source size).
    """
    src_h, src_w = src.shape[:2]
    f = 1.0 if height is None else height / src_h
    canvas = src if f == 1.0 else cv2.resize(
        src, (max(1, round(src_w * f)), height), interpolation=cv2.INTER_LINEAR)
    canvas = np.ascontiguousarray(canvas).copy()
    boxes = to_numpy(crop_bbox).reshape(2, 4)
    for (top, left, bh, bw), col in zip(boxes, BOX_COLOURS):
        cv2.rectangle(canvas, (int(round(left * f)), int(round(top * f))),
                      (int(round((left + bw) * f)) - 1, int(round((top + bh) * f)) - 1), col, 1)
    centres = to_numpy(centres)
    pairs = to_numpy(pairs).astype(np.int64).reshape(-1, 2)
    for (ia, ib), col in zip(pairs, palette(len(pairs))):
        ya, xa = centres[0, ia] * f
        yb, xb = centres[1, ib] * f
        pa, pb = (int(xa), int(ya)), (int(xb), int(yb))
        cv2.line(canvas, pa, pb, col, 1, cv2.LINE_8)
        cv2.circle(canvas, pa, 2, col, -1, cv2.LINE_8)
        cv2.circle(canvas, pb, 3, col, 1, cv2.LINE_8)
    return canvas


def match_rows(view_a: np.ndarray, view_b: np.ndarray, match: Dict[str, np.ndarray],
               grid_hw: Tuple[int, int], scale: int = 1,
               flips: Optional[Sequence[bool]] = None,
               src: Optional[np.ndarray] = None,
               crop_bbox: Optional[ArrayLike] = None,
               directions: Sequence[str] = ('a_to_b', 'b_to_a')) -> list:
    """Rows for :func:`cmid_mm.visualization.image.titled_grid`: one per direction
    (``'a_to_b'``: student A -> teacher B, ``'b_to_a'``), each
    ``[source panel (if src given), A | B match picture]``."""
    labels = dict(a_to_b='student A -> teacher B', b_to_a='student B -> teacher A')
    unknown = [d for d in directions if d not in labels]
    if unknown or not directions:
        raise ValueError(f'directions must be a non-empty subset of {list(labels)}; got '
                         f'{list(directions)}')
    fa, fb = (bool(f) for f in (flips if flips is not None else (False, False)))
    names = f'A{" (flip)" if fa else ""} | B{" (flip)" if fb else ""}'
    rows = []
    for key in directions:
        label = labels[key]
        row = []
        if src is not None:
            row.append(('source: A red, B blue',
                        draw_source(src, crop_bbox, match['centres'], match[key],
                                    height=view_a.shape[0] * scale)))
        row.append((f'{label}: {names}',
                    draw_matches(view_a, view_b, match[key], grid_hw, scale)))
        rows.append(row)
    return rows
