"""Print how far a 2-rank x B CMID run is from a 1-rank x 2B run, and how far ranks are from
each other (the measured numbers behind docs/scale.md, "Distributed on CPU").

    python tests/integration/ddp_equivalence_report.py [--steps 3] [--keep DIR]

Runs ddp_cmid_worker.py with ``torch.distributed.run`` (gloo, 127.0.0.1), 2 processes then 1,
and prints per run and step: the largest relative difference ||a - b|| / ||b|| over the
student's gradients (per module) and over parameters, EMA teacher, centre and queue, the loss
terms (mean over ranks vs one process), and the state entries that differ between ranks.
"""
import argparse
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile

import torch

HERE = osp.dirname(osp.abspath(__file__))
RUNS = ('swin', 'vit', 'swin_freq', 'resnet_bn')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(nproc, out, runs, steps):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if osp.isdir('/sys/class/net/lo'):
        env['GLOO_SOCKET_IFNAME'] = 'lo'
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           '--master_addr=127.0.0.1', f'--master_port={free_port()}',
           osp.join(HERE, 'ddp_cmid_worker.py'), out, '--runs', ','.join(runs),
           '--steps', str(steps)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item() if b.norm() > 0 else a.norm().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--keep', help='directory for the dumps (default: a temporary one)')
    args = parser.parse_args()
    out = args.keep or tempfile.mkdtemp(prefix='ddp_report_')
    os.makedirs(out, exist_ok=True)
    torchrun(2, out, RUNS, args.steps)
    torchrun(1, out, RUNS, args.steps)

    def load(run, world, rank=0):
        return torch.load(osp.join(out, f'{run}_w{world}_r{rank}.pt'), weights_only=False)

    for run in RUNS:
        r0, r1, one = load(run, 2, 0), load(run, 2, 1), load(run, 1)
        print(f'== {run}: 2 ranks x {r0["per_rank"]} vs 1 rank x {one["per_rank"]}')
        for step, (a, b, c) in enumerate(zip(r0['records'], r1['records'], one['records'])):
            modules = {}
            for name, g in c['grads'].items():
                module = name.split('.')[0]
                modules[module] = max(modules.get(module, 0.0), rel(a['grads'][name], g))
            grads = '  '.join(f'{m} {v:.1e}' for m, v in modules.items())
            state = {}
            for key, v in c['state'].items():
                if not v.is_floating_point():
                    continue
                group = ('teacher' if key.startswith('teacher.') else
                         'centre' if key == 'local_head.center' else
                         'queue' if key == 'global_head.queue' else 'student')
                state[group] = max(state.get(group, 0.0), rel(a['state'][key], v))
            states = '  '.join(f'{g} {v:.1e}' for g, v in state.items())
            losses = '  '.join(
                f"{k} {(a['losses'][k] + b['losses'][k]) / 2:.6f}/{v:.6f}"
                for k, v in c['losses'].items() if k != 'loss')
            across = [k for k in a['state'] if not torch.equal(a['state'][k], b['state'][k])]
            grads_across = sum(not torch.equal(a['grads'][k], b['grads'][k]) for k in a['grads'])
            print(f' step {step} grad rel diff: {grads}')
            print(f'        state rel diff: {states}')
            print(f'        losses (2 ranks / 1 rank): {losses}')
            print(f'        across ranks: {len(across)} state entries differ '
                  f'{sorted({k.rsplit(".", 1)[-1] for k in across})}, '
                  f'{grads_across} gradients differ')
    print(f'dumps in {out}')


if __name__ == '__main__':
    main()
