"""Preemption and requeue on a real one-node Slurm (slurm_cluster.py), 2 ranks (gloo).

A batch job (``sbatch --requeue``) runs ``tools/slurm_train.sh`` (demo config, 16 images,
2 ranks x batch 2 -> 4 iterations per epoch, 2 epochs). It is signalled twice while it trains,
at random points (``SignalPlan``: a batch of the epoch after whose log line the signal is
sent, and a delay in iterations; the seed is in every failure message,
``CMID_PREEMPT_SEED=<seed>`` draws the same points again):

1. ``scancel --signal=USR1 JOB`` (what ``--signal=USR1@T`` does: the tasks get it) during
   epoch 1: the ranks finish the iteration, rank 0 writes ``iter_N.pth`` and runs
   ``scontrol requeue``; Slurm requeues the job and starts it again (``SLURM_RESTART_COUNT=1``),
   and ``slurm_train.sh`` adds ``--resume``;
2. ``scancel --batch --signal=USR1 JOB`` (what ``--signal=B:USR1@T`` does: only the batch
   shell gets it) during epoch 2 of the requeued job: ``slurm_train.sh`` forwards it to srun,
   srun to the tasks; the same again.

A signal travels sbatch -> slurmctld -> slurmd -> the tasks, so where it lands is a matter of
timing: in a CI run, a signal sent 0.21 s after the log line of batch 2 landed two iterations
later, at the end of the epoch. The signals are therefore sent after batch 1 (three iterations
of slack), the waits accept any later log line, and the checks hold wherever a signal lands:
each stop is at or after the iteration whose log line triggered it, the second after the first.
Mid-epoch resume with a signal that lands where it is sent is test_midepoch_resume.py's.

The job then completes with ``Restarts=2``, and every loss logged after each checkpoint, the
final weights, buffers (queue, centre, teacher), optimizer, schedulers and loss history are
bitwise those of an uninterrupted 2-rank run with the same options (``tools/dist_train.sh``;
the session's one such run, shared with test_midepoch_resume.py).
"""
import os.path as osp
import re
import subprocess
import sys
import time

import pytest

import cmid_mm  # noqa: F401
from tests.integration.slurm_cluster import SlurmCluster, free_port, unavailable_reason
from tests.integration.test_exact_resume import LOSS_KEYS, _checkpoint_summary, _logged_losses
from tests.integration.test_midepoch_resume import SignalPlan, reproducible, two_rank_reference

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = 'configs/cmid_demo_resnet18_rs-sample.py'
RANKS, PER_EPOCH, EPOCHS = 2, 4, 2
TOTAL = PER_EPOCH * EPOCHS
JOB_TIMEOUT = 600
# the options of the 2-rank reference run (test_midepoch_resume._start(..., ranks=2))
OPTIONS = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.dataset.indices=16', f'train_cfg.max_epochs={EPOCHS}',
           'default_hooks.checkpoint.by_epoch=False', f'default_hooks.checkpoint.interval={TOTAL}',
           'default_hooks.logger.interval=1', 'log_processor.window_size=1',
           'randomness.seed=0']

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=str(unavailable_reason()))


def _env(cluster):
    env = dict(cluster.env, GPUS=str(RANKS), GPUS_PER_NODE=str(RANKS), CPUS_PER_TASK='1',
               PYTHON=sys.executable, SRUN_ARGS='--label', OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    env.pop('GRES', None)
    return env


def _job(cluster, job):
    res = cluster.client('scontrol', 'show', 'job', '-o', job)
    return dict(f.split('=', 1) for f in res.stdout.split() if '=' in f)


def _wait_for(cluster, job, log, predicate, what):
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        text = open(log).read() if osp.exists(log) else ''
        state = _job(cluster, job)
        if predicate(text, state):
            return text, state
        if state.get('JobState') in ('FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL'):
            break
        time.sleep(0.2)
    pytest.fail(f'waiting for {what}: job {state}\n{text[-4000:]}\n{cluster.logs()}')


def _last_logged(run):
    """The last iteration (1-based, over epochs) rank 0 logged in ``run`` (0 before any), and
    its log line."""
    found = re.findall(r'^(0: .*Epoch\(train\) \[(\d+)\]\[(\d+)/%d\].*)$' % PER_EPOCH, run,
                       re.M)
    return max((((int(e) - 1) * PER_EPOCH + int(b), line) for line, e, b in found),
               default=(0, ''))


def _run_since(text, restart):
    """The part of the job's log written by its run number ``restart``."""
    parts = text.split(f'job start, restart count {restart}\n')
    return parts[1].split('job start, restart count')[0] if len(parts) > 1 else ''


@pytest.fixture(scope='module')
def cluster():
    # cred_expire: a requeued job waits that long before it may start again (default 120 s);
    # sched_interval: the scheduler looks for it every second (default 60 s)
    with SlurmCluster(cred_expire=5, sched_interval=1) as c:
        yield c


@pytest.fixture(scope='module')
def two_ranks(request, tmp_path_factory):
    return two_rank_reference(request, tmp_path_factory)


def test_signalled_slurm_job_requeues_and_resumes_bit_for_bit(cluster, two_ranks, tmp_path):
    plan = SignalPlan(epochs=(1, 2), last_batch=1)
    print(plan)
    with reproducible(plan):
        _signalled_job(cluster, two_ranks, tmp_path / 'work', tmp_path, plan)


def _signalled_job(cluster, ref_dir, work, tmp_path, plan):
    script, log = tmp_path / 'job.sh', str(tmp_path / 'job.log')
    script.write_text(
        '#!/bin/bash\n'
        'echo "job start, restart count ${SLURM_RESTART_COUNT:-0}"\n'
        f'cd {REPO}\n'
        f'exec bash tools/slurm_train.sh debug cmid_pre {CONFIG} {work} --cfg-options '
        + ' '.join(OPTIONS) + '\n')
    res = subprocess.run(['sbatch', '--parsable', '--requeue', f'--ntasks={RANKS}',
                          f'--ntasks-per-node={RANKS}', f'--gres=gpu:{RANKS}',
                          '--cpus-per-task=1', '--open-mode=append', f'--output={log}',
                          '--job-name=cmid_pre', str(script)], env=_env(cluster),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().split(';')[0]

    # 1. USR1 to the tasks during epoch 1
    text, _ = _wait_for(cluster, job, log, lambda t, s: _last_logged(_run_since(t, 0))[0] >=
                        plan.iteration(0), f'{plan.marker(0)} (or later) of the first run')
    time.sleep(plan.delay(0, _last_logged(_run_since(text, 0))[1]))
    assert cluster.client('scancel', '--signal=USR1', job).returncode == 0
    text, state = _wait_for(cluster, job, log, lambda t, s: _last_logged(_run_since(t, 1))[0]
                            >= plan.iteration(1), f'{plan.marker(1)} (or later) of run 2')
    # 2. USR1 to the batch shell only, during epoch 2 of the requeued run
    time.sleep(plan.delay(1, _last_logged(_run_since(text, 1))[1]))
    assert cluster.client('scancel', '--batch', '--signal=USR1', job).returncode == 0
    text, state = _wait_for(cluster, job, log, lambda t, s: s.get('JobState') == 'COMPLETED',
                            'the job to complete')
    assert (state['Restarts'], state['ExitCode']) == ('2', '0:0'), state

    runs = [_run_since(text, r) for r in range(3)]
    points = []
    for r, run in enumerate(runs[:2]):
        found = re.search(r'0: .*PreemptionHook: SIGUSR1 received; wrote (\S+) after iteration '
                          r'(\d+) \(epoch (\d), batch (\d) of 4\); stopping with exit status 75',
                          run)
        assert found, f'run {r}:\n{run[-4000:]}'
        assert re.search(r'0: .*PreemptionHook: requeued Slurm job ' + job, run), run[-3000:]
        points.append(int(found.group(2)))
        assert found.group(1) == str(work / f'iter_{points[-1]}.pth')
    for r in (1, 2):
        assert re.search(rf'0: .*resumed epoch: \d, iter: {points[r - 1]}\b', runs[r]), \
            runs[r][-3000:]
    where = ['mid-epoch' if p % PER_EPOCH else 'at the end of an epoch' for p in points]
    print(f'stops: {points[0]} ({where[0]}), {points[1]} ({where[1]})')
    assert plan.iteration(0) <= points[0] < points[1] <= TOTAL, points
    assert plan.iteration(1) <= points[1], points

    logged_ref, logged = _logged_losses(ref_dir), _logged_losses(work)
    assert sorted(logged_ref) == list(range(1, TOTAL + 1))
    for step in range(points[0] + 1, TOTAL + 1):
        assert logged[step] == logged_ref[step], f'iteration {step}'
    a = _checkpoint_summary(ref_dir / f'iter_{TOTAL}.pth')
    b = _checkpoint_summary(work / f'iter_{TOTAL}.pth')
    assert a['meta'] == b['meta'] == (EPOCHS - 1, TOTAL, 0)
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        differ = [k for k in a[part] if a[part][k] != b[part].get(k)]
        assert a[part].keys() == b[part].keys() and not differ, f'{part}: {differ[:5]}'
    assert a['losses'] == b['losses']
    for key in LOSS_KEYS:
        assert a['losses'][key][-1] == logged_ref[TOTAL][key]
