"""The learning-signal study's report: intervals, paired comparisons, plateau and rerun checks.

Reads the per-run records of ``learning_signal_study.py`` (``<out>/runs``) and writes
``results.json``, ``results.md`` and ``probe_vs_iters.png``. Every interval is a two-level
bootstrap over seeds and test units (``cmid_mm.evaluation.bootstrap``):

* per method: the mean over seeds with its 95 % interval, and the 95 % prediction interval of
  one more run (another seed, or the same seed on another machine);
* CMID against every other method, paired by seed and test unit: mean difference, interval and
  the verdict of the stated rule (better / worse / no difference);
* plateau: the last checkpoint against the one before, paired by seed: "still moving" when
  the interval of the change excludes 0;
* fine-tuning (mmseg building IoU, mmdet tree AP50) in the same way;
* a rerun check: runs recorded elsewhere (``--rerun-records``) against the prediction
  intervals.
"""
import math
from typing import Callable, Dict, List, Optional

import numpy as np

from cmid_mm.evaluation.bootstrap import (bootstrap_mean, metric_matrix, metric_matrix_from_fn,
                                          paired_difference, prediction_interval, seed_draws,
                                          unit_counts)

PATCH_TASKS = ('building', 'road', 'trees', 's2_landcover')
DENSE_TASK = 'building_dense'
# (task, probe, metric): the columns of every table
COLUMNS = [(t, p, 'bacc') for t in PATCH_TASKS for p in ('linear', 'knn')] + \
    [(DENSE_TASK, 'linear', 'iou')]
# every metric here (balanced accuracy, IoU, AP50) is a fraction (shown as %): its range
METRIC_RANGE = (0.0, 1.0)
METHOD_ORDER = ('random', 'cmid', 'cmid_mim-only', 'cmid_global-only', 'cmid_local-only',
                'cmid_no-ffl', 'mocov2', 'byol', 'simmim')
LABELS = {'random': 'random init', 'cmid': 'CMID', 'mocov2': 'MoCo-v2', 'byol': 'BYOL',
          'simmim': 'SimMIM', 'cmid_mim-only': 'CMID, MIM only',
          'cmid_global-only': 'CMID, global only', 'cmid_local-only': 'CMID, local only',
          'cmid_no-ffl': 'CMID, no FFL', 'baseline': 'mean-RGB baseline'}


def col_name(col) -> str:
    return '/'.join(col)


def unit_of(metrics: dict, col) -> dict:
    """The per-unit record of one column in one evaluation."""
    task, probe, _ = col
    return metrics[task]['blocks'] if task == DENSE_TASK else metrics[task][probe]


def full_value(metrics: dict, col) -> float:
    task, probe, key = col
    return metrics[task][key] if task == DENSE_TASK else metrics[task][probe][key]


class Resampler:
    """One set of unit counts per column and one set of seed draws, shared by every method, so
    that every comparison is paired and every number reproducible (fixed generator seed)."""

    def __init__(self, n_units: Dict[str, int], n_seeds: int, n_boot: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.counts = {k: unit_counts(n, n_boot, rng) for k, n in sorted(n_units.items())}
        self.draws = seed_draws(n_seeds, n_boot, rng)
        self.n_boot = n_boot

    def draws_for(self, n: int) -> np.ndarray:
        """Seed draws for ``n`` seeds (fewer than planned while a study is unfinished)."""
        if n == self.draws.shape[1]:
            return self.draws
        return seed_draws(n, self.n_boot, np.random.default_rng(n))


def column_matrices(evals: List[dict], col, targets: dict, rs: Resampler):
    """(full values per seed, resampled (n_seeds, B) matrix) of one column."""
    key = col_name(col)
    metric = col[2]
    units = [unit_of(e, col) for e in evals]
    full = np.array([full_value(e, col) for e in evals], dtype=np.float64)
    mat = metric_matrix(metric, units, rs.counts[key], targets.get(col[0]))
    return full, mat


def summarise_method(by_seed: Dict[int, dict], targets: dict, rs: Resampler,
                     level: float) -> dict:
    seeds = sorted(by_seed)
    evals = [by_seed[s] for s in seeds]
    out = {}
    for col in COLUMNS:
        full, mat = column_matrices(evals, col, targets, rs)
        m = bootstrap_mean(full, mat, rs.draws_for(len(evals)), level)
        p = prediction_interval(full, level, bounds=METRIC_RANGE)
        out[col_name(col)] = dict(m, pred_lo=p['lo'], pred_hi=p['hi'], seeds=seeds,
                                  per_seed=[float(v) for v in full])
    return out


def compare(evals_a: List[dict], evals_b: List[dict], targets: dict, rs: Resampler,
            level: float) -> dict:
    """A - B per column, paired by position in the lists (the same seeds, in order)."""
    out = {}
    for col in COLUMNS:
        fa, ma = column_matrices(evals_a, col, targets, rs)
        fb, mb = column_matrices(evals_b, col, targets, rs)
        out[col_name(col)] = paired_difference(fa, fb, ma, mb, rs.draws_for(len(evals_a)),
                                               level)
    return out


def build_report(runs: Dict[str, Dict[int, dict]], randoms: Dict[int, dict], baselines: dict,
                 targets: dict, iters: int, ckpt_iters: List[int], n_boot: int = 2000,
                 level: float = 0.95, finetune: Optional[dict] = None,
                 ap_fn: Optional[Callable] = None, rerun: Optional[dict] = None) -> dict:
    """Everything the markdown and the plot show, from the records.

    Args:
        runs: method -> seed -> record (``evals`` per checkpoint iteration).
        randoms: seed -> record of the random initialisation (``evals['0']``).
        baselines: the mean-RGB baseline's evaluation (one, no seed).
        targets: patch task -> (n_test,) true classes.
        finetune: task -> method -> seed -> fine-tuning record (``metrics``, ``units``).
        ap_fn: ``ap_fn(tiles) -> AP50`` for detection records.
        rerun: method -> seed -> record made elsewhere (another machine / kernel setting).
    """
    n_units = {}
    for col in COLUMNS:
        unit = unit_of(baselines, col)
        n_units[col_name(col)] = len(unit['tp'] if col[0] == DENSE_TASK else unit['pred'])
    seeds_all = sorted({s for m in runs.values() for s in m} | set(randoms))
    rs = Resampler(n_units, len(seeds_all), n_boot)
    final = str(iters)

    methods = {}
    if randoms:
        methods['random'] = {s: randoms[s]['evals']['0'] for s in sorted(randoms)}
    for m in METHOD_ORDER:
        if m in runs:
            methods[m] = {s: r['evals'][final] for s, r in sorted(runs[m].items())}
    summary = {m: summarise_method(ev, targets, rs, level) for m, ev in methods.items()}
    base = {col_name(c): full_value(baselines, c) for c in COLUMNS}

    comparisons = {}
    if 'cmid' in methods:
        for m, ev in methods.items():
            if m == 'cmid':
                continue
            common = sorted(set(ev) & set(methods['cmid']))
            if len(common) >= 2:
                comparisons[m] = dict(seeds=common, **compare(
                    [methods['cmid'][s] for s in common], [ev[s] for s in common], targets,
                    rs, level))
        cm = [methods['cmid'][s] for s in sorted(methods['cmid'])]
        if len(cm) >= 2:
            comparisons['baseline'] = dict(seeds=sorted(methods['cmid']), **compare(
                cm, [baselines] * len(cm), targets, rs, level))

    curves, plateau = {}, {}
    for m, seeds in runs.items():
        common = sorted(s for s in seeds if s in randoms)
        per_it = {0: [randoms[s]['evals']['0'] for s in common]}
        per_it.update({it: [seeds[s]['evals'][str(it)] for s in common] for it in ckpt_iters})
        if len(common) < 2:
            continue
        curves[m] = dict(iters=[0] + list(ckpt_iters), seeds=common)
        for col in COLUMNS:
            series = []
            for it, ev in per_it.items():
                full, mat = column_matrices(ev, col, targets, rs)
                series.append(bootstrap_mean(full, mat, rs.draws_for(len(ev)), level))
            curves[m][col_name(col)] = series
        if len(ckpt_iters) >= 2:
            prev, last = ckpt_iters[-2], ckpt_iters[-1]
            plateau[m] = dict(
                change=f'{prev} -> {last}',
                **compare(per_it[last], per_it[prev], targets, rs, level))

    res = dict(summary=summary, baseline=base,
               comparisons=comparisons, curves=curves, plateau=plateau,
               design=dict(level=level, n_boot=n_boot, units=n_units,
                           rule='A is better than B on a column when the whole 95 % interval '
                           'of the mean paired difference A - B (two-level bootstrap over '
                           'seeds and test units) lies above 0, worse when below, else no '
                           'difference'))
    if finetune:
        res['finetune'] = finetune_report(finetune, rs.n_boot, level, ap_fn)
    if rerun:
        res['rerun'] = rerun_check(rerun, summary, final)
    return res


FT_METRIC = {'seg_buildings': 'iou', 'det_trees': 'AP50'}


def finetune_report(finetune: dict, n_boot: int, level: float,
                    ap_fn: Optional[Callable]) -> dict:
    """Per fine-tuning task: each method's mean with intervals, CMID against the others."""
    out = {}
    for task, by_method in finetune.items():
        key = FT_METRIC.get(task)
        if key is None:
            continue
        any_rec = next(iter(next(iter(by_method.values())).values()))
        if key == 'iou':
            n = len(any_rec['units']['tp'])

            def mat_of(recs, counts):
                return metric_matrix('iou', [r['units'] for r in recs], counts)
        else:
            n = len(any_rec['units']['tiles'])

            def mat_of(recs, counts):
                return metric_matrix_from_fn(
                    lambda u, idx: ap_fn([u['tiles'][i] for i in idx]),
                    [r['units'] for r in recs], counts)
        rng = np.random.default_rng(1)
        counts = unit_counts(n, n_boot, rng)
        seeds_all = sorted({s for recs in by_method.values() for s in recs})
        draws = seed_draws(len(seeds_all), n_boot, rng)
        mats, fulls = {}, {}
        for m, recs in by_method.items():
            seeds = sorted(recs)
            fulls[m] = np.array([recs[s]['metrics'][key] for s in seeds], dtype=np.float64)
            mats[m] = mat_of([recs[s] for s in seeds], counts)
        task_out = dict(metric=key, units=n, methods={}, comparisons={})
        for m in by_method:
            d = draws if len(fulls[m]) == len(seeds_all) else seed_draws(
                len(fulls[m]), n_boot, np.random.default_rng(len(fulls[m])))
            p = prediction_interval(fulls[m], level, bounds=METRIC_RANGE)
            task_out['methods'][m] = dict(bootstrap_mean(fulls[m], mats[m], d, level),
                                          pred_lo=p['lo'], pred_hi=p['hi'],
                                          seeds=sorted(by_method[m]),
                                          per_seed=fulls[m].tolist())
        if 'cmid' in by_method:
            for m in by_method:
                common = sorted(set(by_method[m]) & set(by_method['cmid']))
                if m == 'cmid' or len(common) < 2:
                    continue
                ia = [sorted(by_method['cmid']).index(s) for s in common]
                ib = [sorted(by_method[m]).index(s) for s in common]
                d = seed_draws(len(common), n_boot, np.random.default_rng(len(common)))
                task_out['comparisons'][m] = dict(seeds=common, **paired_difference(
                    fulls['cmid'][ia], fulls[m][ib], mats['cmid'][ia], mats[m][ib], d, level))
        out[task] = task_out
    return out


def rerun_check(rerun: dict, summary: dict, final: str) -> dict:
    """Each rerun's value against the method's prediction interval."""
    out = {}
    for m, seeds in rerun.items():
        for s, rec in seeds.items():
            ev = rec['evals']['0' if m == 'random' else final]
            rows = {}
            for col in COLUMNS:
                ref = summary.get(m, {}).get(col_name(col))
                v = full_value(ev, col)
                published = None
                if ref is not None and s in ref.get('seeds', []):
                    published = ref['per_seed'][ref['seeds'].index(s)]
                rows[col_name(col)] = dict(
                    value=v, published=published,
                    pred_lo=ref['pred_lo'] if ref else None,
                    pred_hi=ref['pred_hi'] if ref else None,
                    inside=bool(ref and ref['pred_lo'] <= v <= ref['pred_hi']))
            out[f'{m}/seed{s}'] = dict(environment=rec.get('environment'), columns=rows)
    return out


# --- markdown --------------------------------------------------------------------------------
def pct(v: Optional[float]) -> str:
    return '–' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{100 * v:.1f}'


def fmt_ci(d: dict) -> str:
    return f'{pct(d["mean"])} [{pct(d["lo"])}, {pct(d["hi"])}]'


def fmt_range(lo: Optional[float], hi: Optional[float]) -> str:
    """``lo – hi`` in %, or '–' when undefined (fewer than 2 seeds)."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return '–'
    return f'{pct(lo)} – {pct(hi)}'


def fmt_diff(d: dict) -> str:
    sign = '+' if d['mean'] >= 0 else ''
    mark = {'better': ' **better**', 'worse': ' **worse**', 'no difference': ''}[d['verdict']]
    return f'{sign}{pct(d["mean"])} [{pct(d["lo"])}, {pct(d["hi"])}]{mark}'


COL_LABELS = {col_name(c): (f'{c[0]} {"lin" if c[1] == "linear" else "kNN"}'
                            if c[0] != DENSE_TASK else 'dense IoU') for c in COLUMNS}


def markdown_tables(rep: dict) -> List[str]:
    cols = [col_name(c) for c in COLUMNS]
    head = '| method | ' + ' | '.join(COL_LABELS[c] for c in cols) + ' |'
    sep = '|---|' + '---|' * len(cols)
    lines = ['## Frozen features at the final checkpoint', '',
             'Balanced accuracy (patch tasks) and building IoU (dense), %: mean over seeds '
             '[95 % interval of the mean]. Seeds per method in results.json.', '', head, sep]
    for m, s in rep['summary'].items():
        lines.append(f'| {LABELS.get(m, m)} | ' + ' | '.join(fmt_ci(s[c]) for c in cols) + ' |')
    lines.append('| mean-RGB baseline | ' + ' | '.join(pct(rep['baseline'][c]) for c in cols)
                 + ' |')
    lines += ['', '### Where one more run is expected (95 % prediction interval, %)', '',
              'Normal theory over the seeds (t with n - 1 degrees of freedom), cut to 0-100.',
              '', head, sep]
    for m, s in rep['summary'].items():
        lines.append(f'| {LABELS.get(m, m)} | ' + ' | '.join(
            fmt_range(s[c]['pred_lo'], s[c]['pred_hi']) for c in cols) + ' |')
    if rep['comparisons']:
        lines += ['', '## CMID against each method (paired; points of %)', '',
                  'Mean difference CMID − method [95 % interval]; **better** / **worse** when '
                  'the interval excludes 0, otherwise no difference.', '',
                  head.replace('| method |', '| CMID − |'), sep]
        for m, c in rep['comparisons'].items():
            lines.append(f'| {LABELS.get(m, m)} | ' + ' | '.join(fmt_diff(c[k]) for k in cols)
                         + ' |')
    if rep['plateau']:
        lines += ['', '## Have the curves stopped moving? (last checkpoint − previous, points '
                  'of %)', '', head.replace('| method |', '| method, change |'), sep]
        for m, c in rep['plateau'].items():
            lines.append(f'| {LABELS.get(m, m)}, {c["change"]} | ' + ' | '.join(
                fmt_diff(c[k]).replace('**better**', '**still rising**').replace(
                    '**worse**', '**still falling**') for k in cols) + ' |')
    if rep.get('finetune'):
        lines += ['', '## Fine-tuning (mmseg / mmdet), %', '']
        for task, t in rep['finetune'].items():
            lines += [f'### {task}: {t["metric"]} ({t["units"]} test units resampled)', '',
                      '| method | mean [95 % interval] | one more run | seeds | CMID − method |',
                      '|---|---|---|---|---|']
            for m, s in t['methods'].items():
                c = t['comparisons'].get(m)
                lines.append(f'| {LABELS.get(m, m)} | {fmt_ci(s)} | '
                             f'{fmt_range(s["pred_lo"], s["pred_hi"])} | {s["seeds"]} | '
                             f'{fmt_diff(c) if c else "–"} |')
            lines.append('')
    if rep.get('rerun'):
        lines += ['', '## Rerun check', '',
                  '| run | environment | inside the prediction interval | outside |',
                  '|---|---|---|---|']
        for k, r in rep['rerun'].items():
            env = r['environment'] or {}
            desc = f'{env.get("cpu_model")}, pinned={env.get("pinned")}'
            ins = [c for c, v in r['columns'].items() if v['inside']]
            outs = [f'{COL_LABELS[c]} {pct(v["value"])} (published {pct(v["published"])}, '
                    f'interval {fmt_range(v["pred_lo"], v["pred_hi"])})'
                    for c, v in r['columns'].items() if not v['inside']]
            lines.append(f'| {k} | {desc} | {len(ins)} of {len(r["columns"])} | '
                         f'{"; ".join(outs) or "–"} |')
    return lines + ['']


def plot_curves(rep: dict, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = [(t, f'{t}: balanced accuracy') for t in PATCH_TASKS] + \
        [(DENSE_TASK, 'building_dense: building IoU')]
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (task, name) in zip(axes.flat, panels):
        for i, (m, cur) in enumerate(rep['curves'].items()):
            col = colours[i % len(colours)]
            for probe in (['linear'] if task == DENSE_TASK else ['linear', 'knn']):
                key = col_name((task, probe, 'iou' if task == DENSE_TASK else 'bacc'))
                mean = np.array([100 * s['mean'] for s in cur[key]])
                lo = np.array([100 * s['lo'] for s in cur[key]])
                hi = np.array([100 * s['hi'] for s in cur[key]])
                ls = '-' if probe == 'linear' else '--'
                ax.plot(cur['iters'], mean, ls, color=col, marker='o', ms=3,
                        label=LABELS.get(m, m) if probe == 'linear' else None)
                ax.fill_between(cur['iters'], lo, hi, color=col, alpha=0.12)
        base = rep['baseline'][col_name((task, 'linear', 'iou' if task == DENSE_TASK
                                         else 'bacc'))]
        ax.axhline(100 * base, color='grey', linestyle=':', label='mean-RGB baseline (linear)')
        ax.set_title(name)
        ax.set_xlabel('pretraining iterations')
        ax.set_ylabel('%')
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].axis('off')
    axes.flat[-1].legend(handles, labels, loc='center',
                         title='solid: linear, dashed: k-NN; band: 95 % interval')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
