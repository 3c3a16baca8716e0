"""Intervals for comparing pretrained backbones over seeds and test units.

A method's score on a task varies with the pretraining seed (and the machine's kernels, which act
like another seed) and with which test units happened to be in the test set. The paired
two-level bootstrap below resamples both: each replicate draws the seeds with replacement and
the test units (patches, or tiles of a segmentation map) with replacement, the **same** units
for both methods (they are scored on the same test set), and takes the mean over the drawn
seeds of the difference of the two methods' scores. The percentile interval of those replicates
is the interval of the mean difference; it excludes 0 when the difference is larger than what
seeds and test sampling explain.

Scores are recomputed from per-unit records, so a resample needs no model:

* classification (``'bacc'``, ``'acc'``): the predicted class of every test unit, and the
  targets; a resample is a vector of counts (how often each unit was drawn) that weights the
  per-class recalls;
* ``'iou'`` / ``'pixel_acc'`` of a binary map: per-tile confusion counts
  (:func:`cmid_mm.evaluation.probes.block_confusion`), summed with the counts as weights.

Other scores (e.g. detection AP, which is not a sum over units) go through
:func:`metric_matrix_from_fn` with a function of the drawn unit indices.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SUM_METRICS = ('bacc', 'acc', 'iou', 'pixel_acc')


def unit_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units) draw counts of a bootstrap over ``n_units`` units (rows sum to
    ``n_units``)."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)


def weighted_metric(metric: str, unit: dict, counts: np.ndarray,
                    target: Optional[np.ndarray] = None) -> np.ndarray:
    """``metric`` of one run for every row of ``counts`` (B, n_units); one value per row.

    Args:
        metric: ``'bacc'`` / ``'acc'`` (``unit['pred']`` and ``target``: one class per unit) or
            ``'iou'`` / ``'pixel_acc'`` (``unit`` holds ``tp``, ``fp``, ``fn``, ``tn`` per tile).
        unit: the run's per-unit record.
        counts: draw counts; a row of ones gives the score on the whole test set.
        target: the true class per unit (classification).
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    if metric in ('bacc', 'acc'):
        if target is None:
            raise ValueError(f'{metric}: the targets of the test units are needed')
        pred, target = np.asarray(unit['pred']), np.asarray(target)
        if pred.shape != target.shape or pred.shape[0] != counts.shape[1]:
            raise ValueError(f'{metric}: {pred.shape[0]} predictions, {target.shape[0]} '
                             f'targets and {counts.shape[1]} unit counts must agree')
        correct = (pred == target).astype(np.float64)
        if metric == 'acc':
            return counts @ correct / counts.sum(1)
        recalls = []
        for c in np.unique(target):
            sel = (target == c).astype(np.float64)
            drawn = counts @ sel
            # a class no test unit of the resample belongs to has no recall: left out (nan)
            with np.errstate(invalid='ignore', divide='ignore'):
                recalls.append(np.where(drawn > 0, counts @ (sel * correct) / drawn, np.nan))
        return np.nanmean(np.stack(recalls), axis=0)
    if metric in ('iou', 'pixel_acc'):
        tp, fp, fn, tn = (np.asarray(unit[k], dtype=np.float64) for k in ('tp', 'fp', 'fn', 'tn'))
        if metric == 'iou':
            num, den = counts @ tp, counts @ (tp + fp + fn)
        else:
            num, den = counts @ (tp + tn), counts @ (tp + fp + fn + tn)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(den > 0, num / den, np.nan)
    raise ValueError(f'unknown metric {metric!r}: one of {SUM_METRICS}, or use '
                     'metric_matrix_from_fn')


def metric_matrix(metric: str, units: Sequence[dict], counts: np.ndarray,
                  target: Optional[np.ndarray] = None) -> np.ndarray:
    """(n_seeds, B): :func:`weighted_metric` of every seed's run under every resample."""
    return np.stack([weighted_metric(metric, u, counts, target) for u in units])


def metric_matrix_from_fn(fn: Callable[[object, np.ndarray], float], units: Sequence,
                          counts: np.ndarray) -> np.ndarray:
    """(n_seeds, B) for a score that is not a weighted sum: ``fn(unit, indices)`` gets the
    drawn unit indices (with repeats) of each resample."""
    indices = [np.repeat(np.arange(counts.shape[1]), row) for row in counts.astype(int)]
    return np.array([[fn(u, idx) for idx in indices] for u in units], dtype=np.float64)


def seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_seeds) seed indices drawn with replacement."""
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def interval(values: np.ndarray, level: float = 0.95) -> List[float]:
    """Percentile interval of bootstrap replicates (nan replicates left out)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float('nan'), float('nan')]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def verdict(lo: float, hi: float) -> str:
    """The stated rule: 'better' when the whole interval of (A - B) is above 0, 'worse' when
    below, else 'no difference'."""
    if lo > 0:
        return 'better'
    if hi < 0:
        return 'worse'
    return 'no difference'


def bootstrap_mean(full: np.ndarray, resampled: np.ndarray, draws: np.ndarray,
                   level: float = 0.95) -> Dict[str, object]:
    """Mean over seeds with its two-level interval.

    Args:
        full: (n_seeds,) score of each seed on the whole test set.
        resampled: (n_seeds, B) scores under the unit resamples.
        draws: (B, n_seeds) seed indices of each replicate (:func:`seed_draws`).
    """
    reps = resampled[draws, np.arange(draws.shape[0])[:, None]].mean(1)
    lo, hi = interval(reps, level)
    return dict(mean=float(np.mean(full)), lo=lo, hi=hi, n_seeds=int(len(full)), level=level)


def paired_difference(full_a: np.ndarray, full_b: np.ndarray, resampled_a: np.ndarray,
                      resampled_b: np.ndarray, draws: np.ndarray,
                      level: float = 0.95) -> Dict[str, object]:
    """Mean over seeds of (A - B), its paired two-level interval and the :func:`verdict`.

    Seed ``i`` of A is paired with seed ``i`` of B (same seed, same test units); ``draws``
    picks the same seed indices for both, and both matrices were computed under the same unit
    counts.
    """
    if resampled_a.shape != resampled_b.shape:
        raise ValueError(f'paired_difference: A has {resampled_a.shape} and B '
                         f'{resampled_b.shape} (seeds, resamples); pair the same seeds')
    out = bootstrap_mean(np.asarray(full_a) - np.asarray(full_b), resampled_a - resampled_b,
                         draws, level)
    out['verdict'] = verdict(out['lo'], out['hi'])
    return out


def prediction_interval(values: Sequence[float], level: float = 0.95,
                        bounds: Optional[Tuple[float, float]] = None) -> Dict[str, float]:
    """Where one more run (another seed, or the same seed on another machine) is expected:
    mean +- t_{(1+level)/2, n-1} * s * sqrt(1 + 1/n) over the runs' scores (normal theory),
    cut to ``bounds`` (the metric's range, e.g. (0, 100) for a percentage: no run lands
    outside it, so the cut keeps the coverage; with few runs t is large, t_{0.975, 1} = 12.7,
    and the uncut interval runs far past the range)."""
    from scipy.stats import t as student_t

    v = np.asarray([x for x in values if x is not None and not np.isnan(x)], dtype=np.float64)
    n = v.size
    if n < 2:
        return dict(mean=float(v.mean()) if n else float('nan'), lo=float('nan'),
                    hi=float('nan'), n=int(n))
    half = student_t.ppf((1 + level) / 2, n - 1) * v.std(ddof=1) * np.sqrt(1 + 1 / n)
    lo, hi = v.mean() - half, v.mean() + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return dict(mean=float(v.mean()), lo=float(lo), hi=float(hi), n=int(n))
