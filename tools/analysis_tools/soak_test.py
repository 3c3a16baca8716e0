"""Soak test: train a config for N iterations with persistent data-loader workers and watch
memory and processes from outside.

    python tools/analysis_tools/soak_test.py                       # demo config, 300 iterations
    python tools/analysis_tools/soak_test.py CONFIG --iters 500 --num-workers 4 \
        --out work_dirs/soak.json --cfg-options train_dataloader.batch_size=8

``tools/train.py`` runs in a subprocess with ``num_workers`` workers and
``persistent_workers=True``. While it trains, this script samples every ``--interval`` seconds
the resident memory of the training process and of every process below it (the data-loader
workers) from ``/proc/<pid>/status`` (``VmRSS``). At each training log line it records a
sample against the iteration number, with ``Pss`` from ``/proc/<pid>/smaps_rollup`` as well
(it splits pages shared between the trainer and its forked workers instead of counting them
once per process).

It prints RSS at the start (first logged iteration), at the end (last logged iteration) and the
maximum, a least-squares slope in MB per 100 iterations after a warm-up, the worker processes
seen (with persistent workers the same ``num_workers`` processes serve every epoch), and
checks that no process of the run is alive after training ends. Everything goes to a JSON
file as well.

Exit status: 0 when training succeeded, no process survived and the trainer's RSS slope is at
most ``--max-slope`` MB per 100 iterations; 1 otherwise. With ``--terminate-after K`` the
trainer gets SIGTERM (``--signal``) after iteration K and only the processes are judged.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
LOG_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='training config (default: the demo config)')
    parser.add_argument('--iters', type=int, default=300,
                        help='train at least this many iterations (whole epochs)')
    parser.add_argument('--num-workers', type=int, default=2, help='data-loader workers')
    parser.add_argument('--batch-size', type=int, help='override train_dataloader.batch_size')
    parser.add_argument('--log-interval', type=int, default=10,
                        help='iterations between training log lines (= iteration samples)')
    parser.add_argument('--interval', type=float, default=0.5,
                        help='seconds between background memory samples')
    parser.add_argument('--warmup', type=float, default=0.1,
                        help='fraction of the iterations left out of the slope fit')
    parser.add_argument(
        '--max-slope', type=float, default=20.0,
        help='largest trainer RSS slope in MB per 100 iterations called flat (20: one '
        '128x128x3 float image kept per iteration; a kept demo batch is ~600)')
    parser.add_argument(
        '--terminate-after', type=int,
        help='send SIGTERM to the trainer after this iteration (as torchrun does to the other '
        'ranks when one fails, or Slurm on scancel) and check that its workers go too')
    parser.add_argument('--signal', default='TERM', choices=['TERM', 'KILL', 'INT'],
                        help='the signal --terminate-after sends (KILL: like the OOM killer)')
    parser.add_argument('--grace', type=float, default=10.0,
                        help='seconds to wait after training for its processes to exit')
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP_NUM_THREADS of the run (1: the machines are shared)')
    parser.add_argument('--work-dir', help='work dir of the run (default: a temporary dir)')
    parser.add_argument('--out', help='JSON report (default: WORK_DIR/soak.json)')
    parser.add_argument('--python', default=sys.executable, help='Python that runs training')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='more key=value overrides for tools/train.py')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.num_workers < 1:
        parser.error(f'--iters ({args.iters}) and --num-workers ({args.num_workers}) must be '
                     '>= 1: the soak test is about persistent data-loader workers')
    return args


# ---------------------------------------------------------------------------- /proc readers
def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def start_time(pid):
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid apart), or None."""
    stat = _read(f'/proc/{pid}/stat')
    if stat is None:
        return None
    fields = stat.rsplit(')', 1)[1].split()
    return int(fields[19])  # field 22 of proc(5), counted after "pid (comm)"


def state(pid):
    stat = _read(f'/proc/{pid}/stat')
    return None if stat is None else stat.rsplit(')', 1)[1].split()[0]


def rss_mb(pid):
    """``VmRSS`` of ``pid`` in MB (None when it is gone or a zombie)."""
    status = _read(f'/proc/{pid}/status')
    match = re.search(r'^VmRSS:\s+(\d+) kB', status or '', re.M)
    return int(match.group(1)) / 1024 if match else None


def pss_mb(pid):
    """``Pss`` of ``pid`` in MB from smaps_rollup (None when unreadable)."""
    rollup = _read(f'/proc/{pid}/smaps_rollup')
    match = re.search(r'^Pss:\s+(\d+) kB', rollup or '', re.M)
    return int(match.group(1)) / 1024 if match else None


def children(pid):
    """Direct children of ``pid`` over all its threads."""
    kids = []
    for task in os.listdir(f'/proc/{pid}/task') if osp.isdir(f'/proc/{pid}/task') else []:
        text = _read(f'/proc/{pid}/task/{task}/children')
        kids += [int(k) for k in (text or '').split()]
    return kids


def descendants(pid):
    found, todo = [], children(pid)
    while todo:
        kid = todo.pop()
        found.append(kid)
        todo += children(kid)
    return found


# ------------------------------------------------------------------------------- sampling
class Sampler:
    """Memory of the trainer and its descendants, on demand and every ``interval`` s."""

    def __init__(self, root, interval):
        self.root = root
        self.interval = interval
        self.seen = {}  # pid -> (start time, first cmdline)
        self.timeline = []  # background samples
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.time()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self, pss=True):
        """One sample; ``pss=False`` skips smaps_rollup, which costs CPU time on big
        processes (the background samples)."""
        kids = descendants(self.root)
        for pid in kids:
            if pid not in self.seen:
                cmd = (_read(f'/proc/{pid}/cmdline') or '').replace('\0', ' ').strip()
                self.seen[pid] = (start_time(pid), cmd[:200])
        workers = {pid: rss_mb(pid) for pid in kids}
        workers = {pid: v for pid, v in workers.items() if v is not None}
        main = rss_mb(self.root)
        pss = [pss_mb(p) for p in [self.root, *workers]] if pss else [None]
        return dict(
            t=round(time.time() - self.t0, 2),
            rss_main=main,
            rss_workers={str(k): round(v, 1) for k, v in sorted(workers.items())},
            rss_total=None if main is None else main + sum(workers.values()),
            pss_total=None if None in pss else sum(pss))

    def _loop(self):
        while not self.stop.is_set():
            s = self.sample(pss=False)
            if s['rss_main'] is not None:
                with self.lock:
                    self.timeline.append(s)
            self.stop.wait(self.interval)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join()


def fit_slope(xs, ys):
    """Least-squares slope of ys over xs and its standard error (None, None if < 3 points)."""
    n = len(xs)
    if n < 3 or len(set(xs)) < 2:
        return None, None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx)**2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = sum((y - my - slope * (x - mx))**2 for x, y in zip(xs, ys))
    return slope, math.sqrt(resid / (n - 2) / sxx)


def interp(t, ts, its):
    """Iteration reached at time ``t`` by linear interpolation of the log-line samples."""
    for (t0, i0), (t1, i1) in zip(zip(ts, its), zip(ts[1:], its[1:])):
        if t0 <= t <= t1:
            return i0 + (i1 - i0) * (t - t0) / (t1 - t0) if t1 > t0 else i1
    return None


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def iters_per_epoch(cfg_path, batch_size, cfg_options):
    """Length of one training epoch of ``cfg_path`` (built dataset // batch, drop_last)."""
    sys.path.insert(0, REPO)
    from mmengine.config import Config, DictAction  # noqa: F401
    from mmengine.registry import init_default_scope

    import cmid_mm  # noqa: F401  registers the datasets and transforms
    cfg = Config.fromfile(cfg_path)
    options = {}
    for item in cfg_options:
        key, _, value = item.partition('=')
        options[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import DATASETS
    loader = cfg.train_dataloader
    dataset = DATASETS.build(loader.dataset)
    batch = batch_size or loader.batch_size
    n = len(dataset) // batch if loader.get('drop_last', False) else -(-len(dataset) // batch)
    if n < 1:
        raise ValueError(f'{cfg_path}: {len(dataset)} images give no batch of {batch}: use a '
                         'smaller --batch-size')
    return n


def main(argv=None):
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='soak_')
    out = args.out or osp.join(work_dir, 'soak.json')
    cwd = os.getcwd()
    os.chdir(REPO)  # configs use data roots relative to the repository
    try:
        ipe = iters_per_epoch(osp.join(cwd, args.config), args.batch_size, args.cfg_options)
    finally:
        os.chdir(cwd)
    epochs = math.ceil(args.iters / ipe)
    total = epochs * ipe
    options = [f'train_dataloader.num_workers={args.num_workers}',
               'train_dataloader.persistent_workers=True', f'train_cfg.max_epochs={epochs}',
               f'default_hooks.logger.interval={args.log_interval}',
               f'default_hooks.checkpoint.interval={epochs}',
               'default_hooks.checkpoint.max_keep_ckpts=2']
    if args.batch_size:
        options.append(f'train_dataloader.batch_size={args.batch_size}')
    cmd = [args.python, osp.join(REPO, 'tools', 'train.py'), osp.join(cwd, args.config),
           '--work-dir', osp.abspath(work_dir), '--cfg-options', *options, *args.cfg_options]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED='1')
    print(f'soak: {epochs} epochs x {ipe} iterations = {total} iterations, '
          f'{args.num_workers} persistent workers; work dir {work_dir}', flush=True)
    print('soak: ' + ' '.join(cmd), flush=True)

    log_path = osp.join(work_dir, 'train_stdout.log')
    os.makedirs(work_dir, exist_ok=True)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    sampler = Sampler(proc.pid, args.interval)
    sampler.start()
    terminated = []

    def terminate(signum):
        if proc.poll() is None and not terminated:
            terminated.append(signum)
            proc.send_signal(signum)

    # Stopping this script stops the training it started (SIGTERM; then reports as usual).
    signal.signal(signal.SIGTERM, lambda *_: terminate(signal.SIGTERM))
    signal.signal(signal.SIGINT, lambda *_: terminate(signal.SIGTERM))
    per_iter, t_start = [], time.time()

    def read_output():
        with open(log_path, 'w') as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                match = LOG_LINE.search(line)
                if not match:
                    continue
                epoch, i, n = map(int, match.groups())
                s = sampler.sample()
                s['iter'] = (epoch - 1) * n + i
                per_iter.append(s)
                print(f"soak: iter {s['iter']:5d}/{total}  trainer RSS {s['rss_main']:7.1f} MB"
                      f"  workers {list(s['rss_workers'].values())} MB", flush=True)
                if args.terminate_after is not None and s['iter'] >= args.terminate_after:
                    print(f"soak: SIG{args.signal} to the trainer (pid {proc.pid}) after "
                          f"iteration {s['iter']}", flush=True)
                    terminate(getattr(signal, 'SIG' + args.signal))

    # Read in a thread: a leaked worker inherits the output pipe and keeps it open after the
    # trainer has gone, so the end of the output is not the end of the run.
    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    returncode = proc.wait()
    t_end = time.time()
    elapsed = t_end - t_start
    reader.join(timeout=args.grace)
    pipe_held = reader.is_alive()
    sampler.finish()

    # Processes of the run still alive after it ended (same pid and start time).
    deadline = t_end + args.grace
    alive = {}
    while True:
        alive = {pid: info for pid, info in sampler.seen.items()
                 if start_time(pid) == info[0] and state(pid) not in (None, 'Z')}
        if not alive or time.time() > deadline:
            break
        time.sleep(0.2)
    gone_after = None if alive else round(time.time() - t_end, 1)
    survivors = [dict(pid=pid, state=state(pid), cmdline=info[1]) for pid, info in alive.items()]
    for pid in alive:  # clean up what this run left behind, by pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    # Every background sample between the first and the last log line gets an iteration, so
    # the fit uses many samples at all phases of an iteration (RSS swings by hundreds of MB
    # between forward and optimizer step), not one sample per log line.
    ts, its = [s['t'] for s in per_iter], [s['iter'] for s in per_iter]
    for s in sampler.timeline:
        s['iter'] = interp(s['t'], ts, its)
    timed = [s for s in sampler.timeline if s['iter'] is not None]
    first = math.ceil(args.warmup * total)

    def stats(key):
        logged = [s[key] for s in per_iter if s[key] is not None]
        if not logged:
            return None
        # PSS is read at the log lines only
        series = per_iter if key == 'pss_total' else timed
        fit = [(s['iter'], s[key]) for s in series if s[key] is not None and s['iter'] >= first]
        slope, err = fit_slope([x for x, _ in fit], [y for _, y in fit])
        tenth = max(1, len(fit) // 10)
        every = [s[key] for s in sampler.timeline if s[key] is not None] + logged
        return dict(
            start=round(logged[0], 1), end=round(logged[-1], 1), max=round(max(every), 1),
            median_first_tenth=round(median([y for _, y in fit[:tenth]]), 1) if fit else None,
            median_last_tenth=round(median([y for _, y in fit[-tenth:]]), 1) if fit else None,
            slope_mb_per_100_iters=None if slope is None else round(100 * slope, 2),
            slope_stderr=None if err is None else round(100 * err, 2), fit_samples=len(fit))

    # Workers: the descendants alive while training logged (collect_env's short-lived
    # compiler probes at start-up are children too, but not workers).
    worker_pids = sorted({int(pid) for s in per_iter for pid in s['rss_workers']})
    other = sorted(set(sampler.seen) - set(worker_pids))
    report = dict(
        config=args.config, iterations=total, epochs=epochs, iters_per_epoch=ipe,
        batch_size=args.batch_size, num_workers=args.num_workers, persistent_workers=True,
        omp_num_threads=args.threads, returncode=returncode, seconds=round(elapsed, 1),
        trainer_rss_mb=stats('rss_main'), total_rss_mb=stats('rss_total'),
        total_pss_mb=stats('pss_total'),
        worker_pids_seen=worker_pids, worker_processes_seen=len(worker_pids),
        other_children_seen=[dict(pid=p, cmdline=sampler.seen[p][1]) for p in other],
        survivors=survivors, all_gone_after_s=gone_after, output_pipe_held_open=pipe_held,
        fit_from_iter=first,
        samples=per_iter, timeline=sampler.timeline, train_log=log_path, command=cmd)
    slope = (report['trainer_rss_mb'] or {}).get('slope_mb_per_100_iters')
    report['flat'] = slope is not None and slope <= args.max_slope
    report['terminated_after'] = args.terminate_after if terminated else None
    if args.terminate_after is not None:  # judged on the processes only
        report['ok'] = bool(terminated) and not survivors
    else:
        report['ok'] = returncode == 0 and not survivors and report['flat']
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)

    done = per_iter[-1]['iter'] if per_iter else 0
    print(f'soak: training exit code {returncode}, {done} of {total} iterations logged in '
          f'{elapsed:.0f} s')
    for key in ('trainer_rss_mb', 'total_rss_mb', 'total_pss_mb'):
        r = report[key]
        if r:
            print(f"soak: {key:15s} start {r['start']:7.1f}  end {r['end']:7.1f}  max "
                  f"{r['max']:7.1f}  median first/last tenth {r['median_first_tenth']} / "
                  f"{r['median_last_tenth']}  slope {r['slope_mb_per_100_iters']} "
                  f"+- {r['slope_stderr']} MB/100 it ({r['fit_samples']} samples from "
                  f"iteration {first})")
    print(f'soak: worker processes seen: {len(worker_pids)} (num_workers={args.num_workers})')
    print(f'soak: processes alive {args.grace:.0f} s after the end: {len(survivors)}'
          + (f' (all gone {gone_after} s after the trainer)' if gone_after is not None else '')
          + ''.join(f"\n  pid {s['pid']} ({s['state']}): {s['cmdline']}" for s in survivors))
    print(f"soak: {'PASS' if report['ok'] else 'FAIL'} (flat = trainer slope <= "
          f'{args.max_slope} MB/100 it); report {out}')
    if returncode != 0 and not terminated:
        print(f'soak: training failed, see {log_path}', file=sys.stderr)
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
