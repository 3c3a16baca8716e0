"""Two-level paired bootstrap of the learning-signal study (cmid_mm.evaluation.bootstrap)."""
import numpy as np
import pytest
import torch

from cmid_mm.evaluation.bootstrap import (bootstrap_mean, interval, metric_matrix,
                                          metric_matrix_from_fn, paired_difference,
                                          prediction_interval, seed_draws, unit_counts,
                                          verdict, weighted_metric)
from cmid_mm.evaluation.probes import block_confusion, classification_metrics


def _expand(counts_row, *arrays):
    idx = np.repeat(np.arange(len(counts_row)), counts_row)
    return [a[idx] for a in arrays]


def test_weighted_classification_equals_metrics_on_the_drawn_units():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, 40)
    pred = np.where(rng.random(40) < 0.6, target, rng.integers(0, 3, 40))
    counts = unit_counts(40, 25, rng)
    assert (counts.sum(1) == 40).all()
    bacc = weighted_metric('bacc', dict(pred=pred), counts, target)
    acc = weighted_metric('acc', dict(pred=pred), counts, target)
    for b in range(25):
        p, t = _expand(counts[b], pred, target)
        m = classification_metrics(torch.from_numpy(p), torch.from_numpy(t), 3)
        assert bacc[b] == pytest.approx(m['bacc'], abs=1e-12)
        assert acc[b] == pytest.approx(m['acc'], abs=1e-12)
    # a row of ones: the whole test set
    full = weighted_metric('bacc', dict(pred=pred), np.ones((1, 40)), target)
    ref = classification_metrics(torch.from_numpy(pred), torch.from_numpy(target), 3)
    assert full[0] == pytest.approx(ref['bacc'], abs=1e-12)


def test_weighted_iou_equals_iou_of_the_drawn_tiles():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randint(0, 2, (50, 70), generator=g), torch.randint(0, 2, (50, 70),
                                                                            generator=g)
    unit = block_confusion(pred, target, 10)  # 5 x 7 tiles
    counts = np.zeros((1, 35), dtype=int)
    counts[0, [0, 3, 34]] = [2, 1, 1]  # tile 0 twice, tiles 3 and 34 (last) once
    tiles = [(0, 0), (0, 0), (0, 3), (4, 6)]
    tp = fp = fn = 0
    for r, c in tiles:
        p = pred[10 * r:10 * r + 10, 10 * c:10 * c + 10] == 1
        t = target[10 * r:10 * r + 10, 10 * c:10 * c + 10] == 1
        tp, fp, fn = tp + int((p & t).sum()), fp + int((p & ~t).sum()), fn + int((~p & t).sum())
    assert weighted_metric('iou', unit, counts)[0] == pytest.approx(tp / (tp + fp + fn))


def test_identical_methods_have_a_zero_interval():
    rng = np.random.default_rng(2)
    target = rng.integers(0, 2, 30)
    units = [dict(pred=rng.integers(0, 2, 30)) for _ in range(5)]
    counts = unit_counts(30, 200, rng)
    m = metric_matrix('bacc', units, counts, target)
    full = metric_matrix('bacc', units, np.ones((1, 30)), target)[:, 0]
    d = paired_difference(full, full, m, m, seed_draws(5, 200, rng))
    assert (d['mean'], d['lo'], d['hi'], d['verdict']) == (0.0, 0.0, 0.0, 'no difference')


def test_a_method_right_on_every_unit_is_better_and_the_mean_is_exact():
    rng = np.random.default_rng(3)
    target = np.array([0, 1] * 10)
    good = [dict(pred=target.copy()) for _ in range(5)]
    bad = []
    for s in range(5):  # seed s gets the first 2 + 2 s units wrong
        p = target.copy()
        p[:2 + 2 * s] = 1 - p[:2 + 2 * s]
        bad.append(dict(pred=p))
    counts = unit_counts(20, 500, rng)
    ones = np.ones((1, 20))
    fa = metric_matrix('bacc', good, ones, target)[:, 0]
    fb = metric_matrix('bacc', bad, ones, target)[:, 0]
    # wrong units: 2, 4, 6, 8, 10 of 20, half of each class -> bacc 0.9, 0.8, ..., 0.5
    assert fb == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    d = paired_difference(fa, fb, metric_matrix('bacc', good, counts, target),
                          metric_matrix('bacc', bad, counts, target), seed_draws(5, 500, rng))
    assert d['mean'] == pytest.approx(0.3)
    assert 0 < d['lo'] < 0.3 < d['hi'] < 1 and d['verdict'] == 'better'
    rev = paired_difference(fb, fa, metric_matrix('bacc', bad, counts, target),
                            metric_matrix('bacc', good, counts, target),
                            seed_draws(5, 500, np.random.default_rng(3)))
    assert rev['verdict'] == 'worse'


def test_interval_covers_the_seed_spread_and_a_mismatch_is_refused():
    # no test-unit noise (every resample scores the same), seeds 0..4 differ: the interval is
    # that of a bootstrap of the mean of [0, 1, 2, 3, 4]
    full = np.arange(5.0)
    resampled = np.repeat(full[:, None], 400, axis=1)
    draws = seed_draws(5, 400, np.random.default_rng(4))
    out = bootstrap_mean(full, resampled, draws)
    means = full[draws].mean(1)
    assert [out['lo'], out['hi']] == interval(means)
    assert out['mean'] == 2.0 and 0.0 <= out['lo'] < 2.0 < out['hi'] <= 4.0
    with pytest.raises(ValueError, match='pair the same seeds'):
        paired_difference(full, full, resampled, resampled[:4], draws)


def test_fn_matrix_gets_the_drawn_indices():
    counts = np.array([[2, 0, 1], [0, 3, 0]])
    got = metric_matrix_from_fn(lambda u, idx: float(np.sum(u[idx])), [np.array([1., 10., 100.])],
                                counts)
    assert got.tolist() == [[102.0, 30.0]]


def test_prediction_interval_hand_computed():
    out = prediction_interval([1, 2, 3, 4, 5])
    # t_{0.975, 4} = 2.776445, s = sqrt(2.5), sqrt(1 + 1/5)
    half = 2.776445 * np.sqrt(2.5) * np.sqrt(1.2)
    assert out['mean'] == 3.0 and out['n'] == 5
    assert out['lo'] == pytest.approx(3 - half, abs=1e-5)
    assert out['hi'] == pytest.approx(3 + half, abs=1e-5)


def test_prediction_interval_is_cut_to_the_metric_range():
    # two runs: t_{0.975, 1} = 12.7062, s = sqrt(2), sqrt(1 + 1/2): 94 +- 22.01
    half = 12.7062 * np.sqrt(2.0) * np.sqrt(1.5)
    out = prediction_interval([95.0, 93.0], bounds=(0.0, 100.0))
    assert out['lo'] == pytest.approx(94 - half, abs=1e-3) and out['hi'] == 100.0
    assert prediction_interval([95.0, 93.0])['hi'] == pytest.approx(94 + half, abs=1e-3)
    assert prediction_interval([5.0, 3.0], bounds=(0.0, 100.0))['lo'] == 0.0


def test_verdict_rule_and_unknown_metric():
    assert verdict(0.001, 0.2) == 'better' and verdict(-0.2, -0.01) == 'worse'
    assert verdict(-0.01, 0.3) == 'no difference' and verdict(0.0, 0.3) == 'no difference'
    with pytest.raises(ValueError, match="unknown metric 'map'"):
        weighted_metric('map', {}, np.ones((1, 3)))
