"""Matched-cell pictures (hand-checked geometry, flips) and loss-curve pictures."""
import json

import numpy as np
import pytest

from cmid_mm.visualization import (draw_matches, draw_source, find_scalars, loss_curves,
                                   match_segments, matched_pairs, moving_average, palette,
                                   read_scalars)
from cmid_mm.visualization.matching import GAP


def test_matched_pairs_hand_checked_shift():
    # A = source rows/cols 0..63, B = rows/cols 32..95; 2x2 cells of 32 px.
    # A centres (16,16) (16,48) (48,16) (48,48); B centres (48,48) (48,80) (80,48) (80,80):
    # only A cell 3 and B cell 0 coincide.
    m = matched_pairs([[0, 0, 64, 64], [32, 32, 64, 64]], [False, False], (2, 2), 1)
    np.testing.assert_array_equal(m['a_to_b'], [[3, 0]])
    np.testing.assert_array_equal(m['b_to_a'], [[3, 0]])
    np.testing.assert_allclose(m['centres'][1, 0], [48, 48])
    seg = match_segments(m['a_to_b'], (2, 2), (64, 64), scale=1, gap=GAP)
    np.testing.assert_array_equal(seg, [[48, 48, 16 + 64 + GAP, 16]])
    seg2 = match_segments(m['a_to_b'], (2, 2), (64, 64), scale=2, gap=GAP)
    np.testing.assert_array_equal(seg2, [[96, 96, 32 + 128 + GAP, 32]])


def test_flipped_view_cells_and_lines():
    # Same box, B flipped: B's cell c shows source column 1 - c, so A0<->B1, A1<->B0, ...
    m = matched_pairs([[0, 0, 64, 64], [0, 0, 64, 64]], [False, True], (2, 2), 4)
    np.testing.assert_array_equal(m['a_to_b'], [[0, 1], [1, 0], [2, 3], [3, 2]])
    np.testing.assert_array_equal(m['b_to_a'], [[1, 0], [0, 1], [3, 2], [2, 3]])
    seg = match_segments(m['a_to_b'], (2, 2), (64, 64))
    off = 64 + GAP
    np.testing.assert_array_equal(seg, [[16, 16, off + 48, 16], [48, 16, off + 16, 16],
                                        [16, 48, off + 48, 48], [48, 48, off + 16, 48]])
    # A source with four coloured quadrants; B is its mirror image (as the pipeline's flip
    # makes it). Every matched pair must show the same content on both sides.
    src = np.zeros((64, 64, 3), np.uint8)
    src[:32, :32], src[:32, 32:] = (200, 0, 0), (0, 200, 0)
    src[32:, :32], src[32:, 32:] = (0, 0, 200), (200, 200, 0)
    view_b = src[:, ::-1].copy()
    for a, b in m['a_to_b']:
        ra, ca = divmod(int(a), 2)
        rb, cb = divmod(int(b), 2)
        np.testing.assert_array_equal(src[ra * 32 + 8, ca * 32 + 8], view_b[rb * 32 + 8,
                                                                          cb * 32 + 8])
    canvas = draw_matches(src, view_b, m['a_to_b'], (2, 2))
    assert canvas.shape == (64, 2 * 64 + GAP, 3) and canvas.dtype == np.uint8
    cols = palette(4)
    for (xa, ya, xb, yb), col in zip(seg, cols):  # the dot at A's end has the pair's colour
        np.testing.assert_array_equal(canvas[ya, xa], col)
    # the view pixels away from outlines, lines and dots are untouched
    np.testing.assert_array_equal(canvas[24, 8], src[24, 8])
    np.testing.assert_array_equal(canvas[:, 64:64 + GAP][40], np.full((GAP, 3), 255))


def test_draw_matches_line_pixels_and_source_panel():
    m = matched_pairs([[0, 0, 64, 64], [32, 32, 64, 64]], [False, False], (2, 2), 1)
    black = np.zeros((64, 64, 3), np.uint8)
    canvas = draw_matches(black, black, m['a_to_b'], (2, 2), scale=2)
    assert canvas.shape == (128, 256 + GAP, 3)
    (xa, ya, xb, yb), = match_segments(m['a_to_b'], (2, 2), (64, 64), scale=2)
    col = palette(1)[0]
    for t in (0.25, 0.5, 0.75):  # points along the line (1 px, not anti-aliased)
        x, y = round(xa + t * (xb - xa)), round(ya + t * (yb - ya))
        assert any((canvas[yy, xx] == col).all() for yy in (y - 1, y, y + 1)
                   for xx in (x - 1, x, x + 1)), (t, x, y)
    # outlines of A's cell 3 (x, y in 64..127) and B's cell 0 (x in 140..203, y in 0..63)
    np.testing.assert_array_equal(canvas[127, 64:128], np.tile(col, (64, 1)))
    np.testing.assert_array_equal(canvas[0:64, 128 + GAP], np.tile(col, (64, 1)))
    src = np.zeros((96, 96, 3), np.uint8)
    pic = draw_source(src, [[0, 0, 64, 64], [32, 32, 64, 64]], m['centres'], m['a_to_b'],
                      height=192)
    assert pic.shape == (192, 192, 3)
    assert (pic[0, 0:128] == (255, 64, 64)).all()  # A's box, red, scaled x2
    assert (pic[64, 64:192] == (64, 160, 255)).all()  # B's box, blue
    with pytest.raises(ValueError, match='two \\(H, W, 3\\) uint8 images of one size'):
        draw_matches(black, np.zeros((32, 32, 3), np.uint8), m['a_to_b'], (2, 2))


def _write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_read_scalars_merges_resumed_runs_and_skips_val(tmp_path):
    _write_log(tmp_path / '20250101_000000' / 'vis_data' / 'scalars.json', [
        dict(loss=3.0, loss_rec=1.0, loss_global=1.0, loss_local=1.0, lr=0.1, iter=5, step=5),
        dict(loss=2.5, loss_rec=0.5, loss_global=1.0, loss_local=1.0, lr=0.1, iter=10,
             step=10),
        {'accuracy/top1': 50.0, 'step': 1},  # a validation line: no loss, no iter
    ])
    _write_log(tmp_path / '20250102_000000' / 'vis_data' / 'scalars.json', [
        dict(loss=2.0, loss_rec=0.4, loss_global=0.8, loss_local=0.8, iter=10, step=10),
        dict(loss=1.5, loss_rec=0.3, loss_global=0.6, loss_local=0.6, iter=15, step=15),
    ])
    files = find_scalars(str(tmp_path))
    assert [f.split('/')[-3] for f in files] == ['20250101_000000', '20250102_000000']
    s = read_scalars(files)
    np.testing.assert_array_equal(s['loss'][0], [5, 10, 15])
    np.testing.assert_array_equal(s['loss'][1], [3.0, 2.0, 1.5])  # resumed run wins at 10
    assert 'accuracy/top1' not in s and 'lr' in s
    img = loss_curves(s, size=(300, 640), smooth=2)
    assert img.shape == (300, 640, 3) and img.dtype == np.uint8
    assert img.min() < 100 and img.max() == 255  # something is drawn on white
    with pytest.raises(KeyError, match="no values for \\['loss_foo'\\]"):
        loss_curves(s, keys=['loss_foo'])
    with pytest.raises(FileNotFoundError, match='no \\*/vis_data/scalars.json'):
        find_scalars(str(tmp_path / '20250101_000000'))


def test_moving_average():
    np.testing.assert_allclose(moving_average(np.array([1., 2, 3, 4]), 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_average(np.array([1., 5]), 1), [1, 5])
