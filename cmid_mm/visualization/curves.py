"""Training curves of the CMID loss terms from mmengine's ``vis_data/scalars.json``."""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

LOSS_KEYS = ('loss_rec', 'loss_global', 'loss_local', 'loss')


def find_scalars(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir (all runs, oldest first), or ``[path]``.

    mmengine writes ``WORK_DIR/<timestamp>/vis_data/scalars.json`` for every run (a resumed
    run gets a new timestamp folder).
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} is neither a scalars.json file nor a work dir')
    files = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {path!r}: pass the work dir of a training run '
            "(its config must keep LocalVisBackend in visualizer.vis_backends) or the file")
    return files


def read_scalars(paths: Sequence[str], x_key: str = 'iter') -> Dict[str, Tuple[np.ndarray,
                                                                               np.ndarray]]:
    """Per key, ``(x, y)`` arrays of the training records (one JSON object per line).

    Only lines with ``x_key`` and a ``loss`` are training records (validation lines have
    neither). Files are read in order and a later file's value replaces an earlier one at the
    same x (a resumed run re-logging iterations). Non-numeric values are skipped.
    """
    table: Dict[str, Dict[float, float]] = {}
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{path}, line {n} is not JSON ({e}): is it an mmengine '
                                     'vis_data/scalars.json?') from e
                if x_key not in rec or 'loss' not in rec:
                    continue
                for key, value in rec.items():
                    if key != x_key and isinstance(value, (int, float)):
                        table.setdefault(key, {})[float(rec[x_key])] = float(value)
    return {k: (np.array(sorted(v)), np.array([v[x] for x in sorted(v)])) for k, v in
            table.items()}


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (shorter at the start)."""
    if window <= 1:
        return y
    c = np.cumsum(np.insert(np.asarray(y, np.float64), 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_curves(series: Dict[str, Tuple[np.ndarray, np.ndarray]],
                keys: Sequence[str] = LOSS_KEYS,
                size: Tuple[int, int] = (480, 960),
                smooth: int = 1,
                x_label: str = 'iteration',
                title: Optional[str] = None) -> np.ndarray:
    """One subplot per loss term (its own y range), loss against iteration.

    Args:
        series: from :func:`read_scalars`.
        keys: terms to plot, in order; a 2 x ceil(n / 2) layout for n > 2.
        size: ``(height, width)`` of the picture in pixels (exact).
        smooth: if > 1, a trailing moving average over that many logged points is drawn over
            the raw curve (which stays visible, lighter).
        x_label: label of the x axis.
        title: figure title.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = [k for k in keys if k not in series]
    if missing:
        raise KeyError(f'no values for {missing} in the log (it has {sorted(series)}); pass '
                       'keys that the training logged')
    height, width = size
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    n = len(keys)
    cols = n if n <= 2 else (n + 1) // 2
    rows_ = 1 if n <= 2 else 2
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows_, cols, i + 1)
        x, y = series[key]
        if smooth > 1:
            ax.plot(x, y, color='tab:blue', alpha=0.3, lw=1, label='logged')
            ax.plot(x, moving_average(y, smooth), color='tab:blue', lw=1.5,
                    label=f'mean of {smooth}')
            ax.legend(fontsize=7)
        else:
            ax.plot(x, y, color='tab:blue', lw=1.5, marker='.' if len(x) < 40 else None)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if img.shape[:2] != (height, width):  # pragma: no cover - Agg is exact at integer dpi
        raise RuntimeError(f'matplotlib drew {img.shape[:2]} instead of {(height, width)}')
    return img
