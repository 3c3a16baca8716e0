"""Probe maths of the learning-signal study (cmid_mm.evaluation.probes)."""
import math

import pytest
import torch
import torch.nn.functional as F

from cmid_mm.evaluation.probes import (balanced_accuracy, bilinear_matrix, binary_iou,
                                       block_confusion,
                                       class_weights, classification_metrics,
                                       contiguous_groups, fit_logistic,
                                       interpolated_linear_probe, knn_probe, linear_probe,
                                       macro_f1, select_l2, standardise)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _blobs(n_per_class, num_classes, dim, sep, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * sep
    x = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g)
                   for c in range(num_classes)])
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    perm = torch.randperm(len(y), generator=g)
    return x[perm], y[perm]


def test_linear_probe_separable_three_classes():
    x, y = _blobs(100, 3, 16, sep=6.0, seed=0)  # centres ~24 std apart: separable
    res = linear_probe(x[:150], y[:150], x[150:], 3)
    m = classification_metrics(res['pred'], y[150:], 3)
    assert m['acc'] == 1.0 and m['bacc'] == 1.0
    assert res['l2'] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0) and len(res['cv']) == 5


def test_linear_probe_separable_halfspace():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 8, generator=g)
    w = torch.randn(8, generator=g)
    keep = (x @ w).abs() > 0.3 * w.norm()  # a margin around the separating plane
    x, y = x[keep], (x[keep] @ w > 0).long()
    res = linear_probe(x[:200], y[:200], x[200:], 2, l2_grid=(1e-4, 1e-3))
    assert classification_metrics(res['pred'], y[200:], 2)['acc'] >= 0.98


def test_linear_probe_random_labels_is_chance():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1200, 32, generator=g)
    y = torch.randint(0, 3, (1200, ), generator=g)
    res = linear_probe(x[:600], y[:600], x[600:], 3)
    m = classification_metrics(res['pred'], y[600:], 3)
    assert abs(m['acc'] - 1 / 3) < 0.07 and abs(m['bacc'] - 1 / 3) < 0.07


def test_fit_logistic_interp_equals_materialised_rows():
    g = torch.Generator().manual_seed(3)
    cells = torch.randn(6, 4, generator=g, dtype=torch.float64)
    interp = torch.rand(20, 6, generator=g, dtype=torch.float64)
    interp = interp / interp.sum(1, keepdim=True)
    y = (interp @ cells[:, 0] > (interp @ cells[:, 0]).median()).long()
    w1, b1 = fit_logistic(interp @ cells, y, 2, l2=0.1)
    w2, b2 = fit_logistic(cells, y, 2, l2=0.1, interp=interp.to_sparse())
    assert torch.allclose(w1, w2, atol=1e-6) and torch.allclose(b1, b2, atol=1e-6)


def test_class_weights_and_standardise():
    w = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2, 0.], dtype=torch.float64))
    tr, (te, ), mean, std = standardise(torch.tensor([[1., 5.], [3., 5.]]),
                                        torch.tensor([[2., 7.]]))
    assert torch.allclose(tr, torch.tensor([[-1., 0.], [1., 0.]], dtype=torch.float64))
    assert torch.allclose(te, torch.tensor([[0., 2.]], dtype=torch.float64))  # std 1 if const


def test_select_l2_uses_the_given_folds_only():
    x, y = _blobs(30, 2, 4, sep=3.0, seed=4)
    groups = contiguous_groups(60, 3)
    assert groups.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    l2, cv = select_l2(x, y, 2, groups=groups, l2_grid=(1e-2, 1.0))
    assert set(cv) == {1e-2, 1.0} and l2 in cv
    assert cv[l2] == max(cv.values())
    with pytest.raises(ValueError, match='two groups'):
        select_l2(x, y, 2, groups=torch.zeros(60, dtype=torch.long))


def test_knn_hand_computed_cosine_vote():
    # unit vectors at angles 0, 10, 60, 80 degrees; classes 0, 0, 1, 1
    ang = torch.tensor([0., 10., 60., 80.]) * math.pi / 180
    train = torch.stack([ang.cos(), ang.sin()], 1)
    labels = torch.tensor([0, 0, 1, 1])
    # query at 40 deg: cosines to 0/10/60/80 deg = .766/.866/.940/.766; k=2 keeps 60 deg
    # (class 1) and 10 deg (class 0): exp(.940 / .1) > exp(.866 / .1) -> class 1
    q = torch.tensor([[math.cos(math.radians(40)), math.sin(math.radians(40))]])
    pred = knn_probe(train, labels, q, 2, k=2, T=0.1)
    assert pred.tolist() == [1]
    # query at 25 deg, k=3: cos to 0/10/60/80 = .906/.966/.819/.574 -> 10, 0, 60
    # scores: class 0 = e^(.966/T) + e^(.906/T), class 1 = e^(.819/T)
    q2 = torch.tensor([[math.cos(math.radians(25)), math.sin(math.radians(25))]])
    from cmid_mm.evaluation.knn import knn_classify
    pred2, scores = knn_classify(train, labels, q2, k=3, T=0.5, num_classes=2)
    c = [math.cos(math.radians(25 - a)) for a in (0, 10, 60)]
    expected = [math.exp(c[0] / 0.5) + math.exp(c[1] / 0.5), math.exp(c[2] / 0.5)]
    assert pred2.tolist() == [0]
    assert torch.allclose(scores[0], torch.tensor(expected), rtol=1e-5)


def test_knn_euclidean_majority():
    train = torch.tensor([[0.], [1.], [2.], [10.], [11.]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    pred = knn_probe(train, labels, torch.tensor([[1.5], [10.4], [6.5]]), 2, k=3,
                     metric='euclidean')
    # 6.5: nearest three are 10 (3.5), 2 (4.5), 11 (4.5, tie with 2 -> topk keeps one of them)
    assert pred[:2].tolist() == [0, 1]
    with pytest.raises(ValueError, match='metric'):
        knn_probe(train, labels, train, 2, metric='manhattan')


def test_metrics_hand_computed():
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 2, 1])
    # recalls: 3/4, 1/2, 1/2 -> balanced 7/12; acc 5/8
    assert balanced_accuracy(pred, target, 3) == pytest.approx(7 / 12)
    m = classification_metrics(pred, target, 3)
    assert m['acc'] == pytest.approx(5 / 8)
    # F1: class 0 tp3 fp1 fn1 -> 6/8; class 1 tp1 fp2 fn1 -> 2/5; class 2 tp1 fp0 fn1 -> 2/3
    assert macro_f1(pred, target, 3) == pytest.approx((6 / 8 + 2 / 5 + 2 / 3) / 3)


def test_binary_iou_hand_made_mask():
    target = torch.tensor([[0, 1, 1, 0],
                           [0, 1, 1, 0],
                           [0, 0, 0, 0],
                           [0, 0, 0, 0]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 0, 1, 0],
                         [0, 0, 0, 0],
                         [0, 0, 0, 1]])
    # intersection 3 (0,1) (0,2) (1,2); union 4 + 5 - 3 = 6
    assert binary_iou(pred, target) == pytest.approx(3 / 6)
    assert math.isnan(binary_iou(torch.zeros(2, 2), torch.zeros(2, 2)))


def test_bilinear_matrix_matches_grid_sample():
    g = torch.Generator().manual_seed(5)
    fmap = torch.randn(3, 4, 5, generator=g)  # (C, h, w)
    H, W = 13, 17  # pixels covering the map: cell_per_px = 4/13, 5/17
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    interp = bilinear_matrix(ys, xs, (4, 5), (4 / H, 5 / W))
    assert torch.allclose(torch.sparse.sum(interp, 1).to_dense(), torch.ones(H * W))
    ours = torch.sparse.mm(interp, fmap.reshape(3, -1).t())
    gy = 2 * (ys + 0.5) / H - 1
    gx = 2 * (xs + 0.5) / W - 1
    grid = torch.stack([gx, gy], -1).view(1, 1, -1, 2).float()
    ref = F.grid_sample(fmap[None], grid, mode='bilinear', padding_mode='border',
                        align_corners=False)[0, :, 0].t()
    assert torch.allclose(ours, ref, atol=1e-5)


def test_interpolated_probe_equals_probe_on_interpolated_rows():
    g = torch.Generator().manual_seed(6)
    fmap = torch.randn(8, 6, 6, generator=g)
    H = W = 30
    ys, xs = torch.meshgrid(torch.arange(0, H, 2), torch.arange(0, W, 2), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    interp = bilinear_matrix(ys, xs, (6, 6), (6 / H, 6 / W))
    cells = fmap.reshape(8, -1).t()
    rows = torch.sparse.mm(interp, cells)
    y = (rows[:, 0] + 0.5 * rows[:, 1] > 0).long()
    groups = torch.div(ys * 3, H, rounding_mode='floor')
    ref = linear_probe(rows, y, cells, 2, groups=groups, l2_grid=(1e-2, 1e-1),
                       dtype=torch.float32)
    ours = interpolated_linear_probe(cells, interp, y, 2, groups=groups,
                                     l2_grid=(1e-2, 1e-1))
    assert ours['l2'] == ref['l2']
    for k in ref['cv']:
        assert ours['cv'][k] == pytest.approx(ref['cv'][k], abs=0.02)
    logits = ((cells - ours['mean']) / ours['std']) @ ours['w'] + ours['b']
    assert (logits.argmax(1) == ref['pred']).float().mean() >= 0.97


def test_block_confusion_hand_counted():
    # 3 x 5 map, 2 px tiles: tiles (row-major) cover rows {0,1},{2} x cols {0,1},{2,3},{4}
    pred = torch.tensor([[1, 1, 0, 0, 1],
                         [0, 1, 0, 1, 1],
                         [1, 0, 0, 0, 0]])
    target = torch.tensor([[1, 0, 0, 0, 1],
                           [1, 1, 0, 0, 0],
                           [1, 1, 0, 1, 0]])
    c = block_confusion(pred, target, 2)
    assert c['tp'] == [2, 0, 1, 1, 0, 0]
    assert c['fp'] == [1, 1, 1, 0, 0, 0]
    assert c['fn'] == [1, 0, 0, 1, 1, 0]
    assert c['tn'] == [0, 3, 0, 0, 1, 1]
    # summed over the tiles: the whole map's IoU
    iou = sum(c['tp']) / (sum(c['tp']) + sum(c['fp']) + sum(c['fn']))
    assert iou == pytest.approx(binary_iou(pred, target)) and iou == pytest.approx(4 / 10)
    with pytest.raises(ValueError, match=r'\(3, 5\)'):
        block_confusion(pred, target[:, :4], 2)
