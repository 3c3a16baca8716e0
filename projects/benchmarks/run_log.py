"""What the benchmark scripts read back from a finished training run: mmengine's per-iteration
times, and the machine's load around it."""
import glob
import json
import os
import os.path as osp
from typing import List, Optional

import numpy as np


def loadavg() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def parse_times(run_dir: str, ckpt_iters=()) -> dict:
    """Per-iteration times from mmengine's scalars.json (logger interval 1, window 1).

    The steady-state statistics leave out the first two iterations (warm-up) and every
    iteration right after a checkpoint (its time includes writing the checkpoint).
    """
    times, data_times = {}, {}
    paths = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    for path in paths:  # one per attempt; a resumed attempt overwrites repeated iterations
        for line in open(path):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if 'time' in rec and 'iter' in rec:
                times[rec['iter']] = rec['time']
                data_times[rec['iter']] = rec.get('data_time', float('nan'))
    skip = {1, 2} | {i + 1 for i in ckpt_iters}
    steady = [times[i] for i in sorted(times) if i not in skip] or list(times.values())
    steady_data = [data_times[i] for i in sorted(data_times) if i not in skip] or \
        list(data_times.values())
    return dict(
        logged_iters=len(times), steady_iters=len(steady), attempts=len(paths),
        s_per_iter_median=float(np.median(steady)) if steady else None,
        s_per_iter_mean=float(np.mean(steady)) if steady else None,
        data_s_per_iter_median=float(np.median(steady_data)) if steady_data else None,
        train_loop_s=float(sum(times.values())))
