import numpy as np
import pytest
import torch

from cmid_mm.models.utils import cell_centers, gather_cells, match_cells


def _centers(box, flip=False, grid=(3, 3), src=None, reference_offsets=False):
    return cell_centers(torch.tensor([box]), torch.tensor([flip]), grid,
                        None if src is None else torch.tensor([src]), reference_offsets)


def test_cell_centers_known_box():
    # 2x3 grid on a box at (top 10, left 20), 40 high and 60 wide: cells 20 x 20 px.
    c = _centers([10, 20, 40, 60], grid=(2, 3))
    expected = [[20, 30], [20, 50], [20, 70], [40, 30], [40, 50], [40, 70]]
    assert c.shape == (1, 6, 2) and c.dtype == torch.float32
    assert torch.equal(c[0], torch.tensor(expected, dtype=torch.float32))
    # flipped: columns mirrored within each row
    c = _centers([10, 20, 40, 60], flip=True, grid=(2, 3))
    expected = [[20, 70], [20, 50], [20, 30], [40, 70], [40, 50], [40, 30]]
    assert torch.equal(c[0], torch.tensor(expected, dtype=torch.float32))


def test_cell_centers_batch_and_flatten_order():
    boxes = torch.tensor([[0., 0., 30., 30.], [5., 7., 9., 12.]])
    flips = torch.tensor([False, True])
    c = cell_centers(boxes, flips, (3, 4))
    assert c.shape == (2, 12, 2)
    for b in range(2):
        top, left, height, width = boxes[b].tolist()
        for r in range(3):
            for col in range(4):
                src_col = 3 - col if flips[b] else col
                y = top + (r + 0.5) * height / 3
                x = left + (src_col + 0.5) * width / 4
                assert c[b, r * 4 + col].tolist() == pytest.approx([y, x])


def test_cell_centers_reference_offsets():
    # The reference's offset is the fraction of the free range, i / (H - h + 1e-10), used as
    # if it were pixels. 224 px image, 7x7 grid. Rows: top 56 of a 112 px crop -> 56 / 112 =
    # 0.5 (minus 4e-13, lost in float32), cells 16 px: 0.5 + 8 + 16 r. Columns: left 28 of a
    # 168 px crop -> 28 / 56 = 0.5, cells 24 px: 0.5 + 12 + 24 c. (The old formula top / H
    # gives 0.25 and 0.125: 8.25 ... and 12.125 ....)
    c = _centers([56, 28, 112, 168], grid=(7, 7), src=[224, 224], reference_offsets=True)
    rows = [8.5 + 16 * r for r in range(7)]
    cols = [12.5 + 24 * k for k in range(7)]
    expected = torch.tensor([[y, x] for y in rows for x in cols])
    assert c.dtype == torch.float32 and torch.equal(c[0], expected)
    # flipped: the columns of each row mirrored
    c = _centers([56, 28, 112, 168], flip=True, grid=(7, 7), src=[224, 224],
                 reference_offsets=True)
    expected = torch.tensor([[y, x] for y in rows for x in cols[::-1]])
    assert torch.equal(c[0], expected)
    # a crop as large as the image: 0 / (0 + 1e-10) = 0, no division by zero
    c = _centers([0, 0, 224, 224], grid=(7, 7), src=[224, 224], reference_offsets=True)
    assert c[0, 0].tolist() == [16.0, 16.0] and c[0, 48].tolist() == [208.0, 208.0]
    # src_shape is ignored in the correct mode
    assert torch.equal(_centers([100, 50, 40, 40], grid=(2, 2), src=[200, 100]),
                       _centers([100, 50, 40, 40], grid=(2, 2)))
    with pytest.raises(ValueError, match='src_shape'):
        _centers([100, 50, 40, 40], reference_offsets=True)
    with pytest.raises(ValueError, match=r'src_shape must be \(B, 2\)'):
        cell_centers(torch.tensor([[100., 50, 40, 40]]), torch.tensor([False]), (2, 2),
                     torch.tensor([200, 100]), True)


def _reference_grid_by_hand(top, left, height, width, src_h, src_w, n, flip):
    """The reference's float32 grid, scalar by scalar with numpy (no torch)."""
    def axis(offset, size, src):
        fraction = offset * 1.0 / (src - size + 1e-10)  # Python float, as albumentations
        centre = np.float32(fraction + size / n / 2)  # float64 sum, stored in float32
        out = [centre]
        for _ in range(1, n):
            centre = np.float32(centre + np.float32(size / n))  # float32 running sum
            out.append(centre)
        return out
    ys, xs = axis(top, height, src_h), axis(left, width, src_w)
    if flip:
        xs = xs[::-1]
    return np.array([[y, x] for y in ys for x in xs], dtype=np.float32)


@pytest.mark.parametrize('box,src,flip', [
    ([13, 91, 100, 73], [224, 224], False),  # cells 100/7 and 73/7 px: inexact sums
    ([0, 5, 97, 219], [224, 224], True),
    ([200, 3, 311, 150], [640, 480], False),
])
def test_reference_offsets_bit_for_bit(box, src, flip):
    """Same float32 numbers as the reference's cumulative float32 grid (IEEE scalar ops)."""
    got = _centers(box, flip=flip, grid=(7, 7), src=src, reference_offsets=True)[0]
    expected = _reference_grid_by_hand(*box, *src, 7, flip)
    assert np.array_equal(got.numpy(), expected)
    # and the two offset formulas really differ here (by up to ~0.7 px)
    old_style = torch.tensor(box[:2], dtype=torch.float64) / torch.tensor(src)
    assert not torch.allclose(torch.tensor(expected[0], dtype=torch.float64),
                              old_style + torch.tensor([box[2], box[3]]) / 14, atol=1e-3)


def test_reference_offsets_near_tie_flips_the_match():
    # One row. Query crop: left 0, width 40 of a 100 px wide image, 1x2 cells -> centres
    # x = 0 + 10 and 0 + 30 (fraction 0 either way). Key crop: left 40, width 39, one cell.
    # Reference fraction 40 / (100 - 39) = 0.6557 -> key centre 20.1557: query cell 1
    # (distance 9.844) is nearer than cell 0 (10.156) and is the one kept. The old formula
    # 40 / 100 = 0.4 put the key at 19.9 and kept cell 0 (9.9 < 10.1).
    q = _centers([0, 0, 20, 40], grid=(1, 2), src=[20, 100], reference_offsets=True)
    k = _centers([0, 40, 20, 39], grid=(1, 1), src=[20, 100], reference_offsets=True)
    assert k[0, 0, 1].item() == pytest.approx(40 / 61 + 19.5, abs=1e-5)
    idx_q, idx_k = match_cells(q, k, num_matches=1)
    assert idx_q.tolist() == [[1]] and idx_k.tolist() == [[0]]


def test_reference_offsets_change_matches():
    # Two disjoint crops: correctly they match only across their nearest edge; with the
    # reference bug both offsets collapse to < 1 px and every cell matches itself.
    q = _centers([0, 0, 30, 30], src=[100, 200], reference_offsets=True)
    k = _centers([0, 120, 30, 30], src=[100, 200], reference_offsets=True)
    idx_q, idx_k = match_cells(q, k, num_matches=9)
    assert idx_q.tolist() == [list(range(9))] and idx_k.tolist() == [list(range(9))]


def test_identical_boxes_match_cell_to_itself():
    c = _centers([3, 4, 30, 30])
    idx_q, idx_k = match_cells(c, c.clone(), num_matches=4)
    # all distances 0: ties keep the lowest query indices
    assert idx_q.tolist() == [[0, 1, 2, 3]]
    assert idx_k.tolist() == [[0, 1, 2, 3]]


def test_flipped_identical_box_mirrors_columns():
    q = _centers([3, 4, 30, 30])
    k = _centers([3, 4, 30, 30], flip=True)
    idx_q, idx_k = match_cells(q, k, num_matches=9)
    assert idx_q.tolist() == [list(range(9))]
    assert idx_k.tolist() == [[r * 3 + (2 - c) for r in range(3) for c in range(3)]]


def test_disjoint_boxes():
    # query cells at x = 5, 15, 25; key box to the right, key cells at x = 65, 75, 85.
    q = _centers([0, 0, 30, 30])
    k = _centers([0, 60, 30, 30])
    idx_q, idx_k = match_cells(q, k, num_matches=3)
    assert idx_q.tolist() == [[2, 5, 8]]  # right-most column, distance 40
    assert idx_k.tolist() == [[0, 3, 6]]  # left-most key column, same row
    # with the key view flipped its left-most cells are in column 2
    k = _centers([0, 60, 30, 30], flip=True)
    idx_q, idx_k = match_cells(q, k, num_matches=3)
    assert idx_q.tolist() == [[2, 5, 8]]
    assert idx_k.tolist() == [[2, 5, 8]]


def test_overlapping_boxes_hand_worked():
    # query 2x2 centres (10,10) (10,30) (30,10) (30,30); key centres (30,30) (30,50) (50,30)
    # (50,50). Nearest key is 0 for all; distances sqrt(800), 20, 20, 0.
    q = _centers([0, 0, 40, 40], grid=(2, 2))
    k = _centers([20, 20, 40, 40], grid=(2, 2))
    idx_q, idx_k = match_cells(q, k, num_matches=2)
    assert idx_q.tolist() == [[1, 3]]  # 3 (d=0), then 1 before 2 (tie at 20)
    assert idx_k.tolist() == [[0, 0]]
    idx_q, idx_k = match_cells(q, k, num_matches=3)
    assert idx_q.tolist() == [[1, 2, 3]] and idx_k.tolist() == [[0, 0, 0]]


def test_match_cells_batched_and_key_tie():
    # sample 0: as test_overlapping_boxes_hand_worked; sample 1: query cell equidistant to
    # two key cells -> lower key index.
    q = torch.tensor([[[10., 10.], [10., 30.]], [[0., 10.], [50., 50.]]])
    k = torch.tensor([[[30., 30.], [30., 50.]], [[0., 20.], [0., 0.]]])
    idx_q, idx_k = match_cells(q, k, num_matches=1)
    assert idx_q.tolist() == [[1], [0]]
    assert idx_k.tolist() == [[0], [0]]
    with pytest.raises(ValueError, match='num_matches'):
        match_cells(q, k, num_matches=3)


def test_gather_cells():
    feat = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    idx = torch.tensor([[3, 0], [1, 1]])
    out = gather_cells(feat, idx)
    assert out.shape == (2, 3, 2)
    # cell r * w + c of the (2, 2) map
    assert torch.equal(out[0], torch.stack([feat[0, :, 1, 1], feat[0, :, 0, 0]], dim=1))
    assert torch.equal(out[1], torch.stack([feat[1, :, 0, 1], feat[1, :, 0, 1]], dim=1))
