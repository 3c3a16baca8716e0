"""bfloat16 autocast (``tools/train.py --amp`` on a CPU with native bfloat16) against float32:
the same training run twice, every loss term compared iteration by iteration.

    python projects/benchmarks/amp_loss_diff.py --out-dir work_dirs/amp_loss_diff
    python projects/benchmarks/amp_loss_diff.py --config configs/cmid_demo_resnet18_rs-sample.py \\
        --epochs 4 --out-dir work_dirs/amp_loss_diff

Both runs use the same config, seed and data order (``randomness.seed``, ``num_workers=0``);
they differ only in ``--amp``. The first iteration compares the arithmetic alone (same weights,
same batch); later ones also carry the drift of two trajectories apart. Writes
``amp_loss_diff.json`` and ``amp_loss_diff.md`` to ``--out-dir``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
LOSS_KEYS = ('loss', 'loss_rec', 'loss_global', 'loss_local')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/cmid_demo_resnet18_rs-sample.py')
    parser.add_argument('--epochs', type=int, default=None,
                        help="train_cfg.max_epochs of both runs (default: the config's; the "
                        'demo: 20 epochs of 5 iterations)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='more key=value overrides for both runs (e.g. a data_root)')
    return parser.parse_args(argv)


def logged_losses(work_dir: str) -> dict:
    """{iteration: {key: value}} from the run's scalars.json."""
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(path):
            rec = json.loads(line)
            if 'loss' in rec:
                out[rec['step']] = {k: rec[k] for k in LOSS_KEYS if k in rec}
    return out


def train(args, work_dir: str, amp: bool) -> float:
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), args.config,
           '--work-dir', work_dir, '--cfg-options', f'randomness.seed={args.seed}',
           'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'default_hooks.logger.interval=1', 'log_processor.window_size=1',
           'default_hooks.checkpoint.interval=100000'] + args.cfg_options
    if args.epochs:
        cmd.append(f'train_cfg.max_epochs={args.epochs}')
    if amp:
        cmd.append('--amp')
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f'{"--amp " if amp else ""}training failed:\n{proc.stderr[-4000:]}')
    if amp and 'CPUAutocastOptimWrapper' not in open(
            glob.glob(osp.join(work_dir, '*', '*.log'))[0]).read():
        raise SystemExit('--amp did not train with bfloat16 autocast here (no native '
                         'bfloat16 on this CPU?): nothing to compare')
    return time.perf_counter() - t0


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    runs, secs = {}, {}
    for name, amp in (('fp32', False), ('bf16', True)):
        work = osp.join(args.out_dir, name)
        secs[name] = train(args, work, amp)
        runs[name] = logged_losses(work)
    steps = sorted(set(runs['fp32']) & set(runs['bf16']))
    if not steps or len(runs['fp32']) != len(runs['bf16']):
        raise SystemExit(f'the runs logged {len(runs["fp32"])} and {len(runs["bf16"])} '
                         'iterations: not comparable')
    iters = steps[-1]
    rel = {s: {k: abs(runs['bf16'][s][k] - runs['fp32'][s][k]) / abs(runs['fp32'][s][k])
               for k in runs['fp32'][s]} for s in steps}
    marks = sorted({1, 2, 5, 10, 25, 50, iters} & set(steps))
    result = dict(config=args.config, iters=iters, seed=args.seed, seconds=secs,
                  fp32=runs['fp32'], bf16=runs['bf16'], rel_diff=rel,
                  max_rel_diff={k: max(rel[s][k] for s in steps) for k in rel[steps[0]]})
    lines = [f'# bfloat16 autocast vs float32: {args.config}, {iters} iterations, '
             f'seed {args.seed}', '',
             f'Wall time: float32 {secs["fp32"]:.0f} s, bfloat16 {secs["bf16"]:.0f} s '
             '(whole runs, start-up included).', '',
             '| iteration | ' + ' | '.join(f'{k} fp32 | {k} bf16 | rel. diff'
                                          for k in LOSS_KEYS) + ' |',
             '|---:|' + '---:|---:|---:|' * len(LOSS_KEYS)]
    for s in marks:
        lines.append(f'| {s} | ' + ' | '.join(
            f'{runs["fp32"][s][k]:.4f} | {runs["bf16"][s][k]:.4f} | {rel[s][k]:.1e}'
            for k in LOSS_KEYS) + ' |')
    lines += ['', 'Largest relative difference over the run: ' + ', '.join(
        f'{k} {v:.1e}' for k, v in result['max_rel_diff'].items()), '']
    with open(osp.join(args.out_dir, 'amp_loss_diff.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out_dir, 'amp_loss_diff.md'), 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
