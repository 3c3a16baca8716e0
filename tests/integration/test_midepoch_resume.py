"""Exact resume from the middle of an epoch, and preemption.

End to end through tools/train.py (demo config, 8 images, batch 2 -> 4 iterations per epoch,
2 epochs, a checkpoint every 3 iterations, seed 0, OMP_NUM_THREADS=1):

* A: uninterrupted, ``num_workers=0``;
* B: ``num_workers=2``, SIGKILLed as soon as ``iter_3.pth`` (3 of the 4 batches of epoch 1)
  is complete, then ``--resume``: it continues at batch 4 of epoch 1;
* C: ``num_workers=2``, SIGUSR1 to every process of the run (trainer and data-loader workers,
  as Slurm signals a job step) during epoch 1 -> it finishes the iteration, writes
  ``iter_N.pth``, exits 75 and leaves no process behind; ``--resume`` with ``num_workers=0``,
  sent SIGTERM during epoch 2 -> the same; ``--resume`` to the end.

B and C log the same loss terms as A at every iteration after their checkpoints (``==``) and
end with bitwise the same weights, buffers (queue, pointer, centre, teacher), optimizer,
schedulers and loss history. Same machine, same threads, same kernels: the computation is
identical, so bitwise equality is the right test.
"""
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import DataLoader

import cmid_mm  # noqa: F401  (registers; allow-lists mmengine checkpoint globals)
from cmid_mm.engine.hooks import PreemptionHook
from cmid_mm.engine.hooks.exact_resume_hook import MidEpochResumeLoop, _batches_from
from tests.integration.slurm_cluster import free_port, pid_alive
from tests.integration.test_exact_resume import (LOSS_KEYS, _checkpoint_summary, _kill,
                                                 _logged_losses)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
PER_EPOCH, EPOCHS, INTERVAL = 4, 2, 3
TOTAL = PER_EPOCH * EPOCHS
RUN_TIMEOUT = 400  # s per training process; each takes ~15 s of CPU
PREEMPTED = 75


def _start(work_dir, num_workers, *extra, ranks=1):
    """tools/train.py, or with ``ranks`` > 1 tools/dist_train.sh (gloo on loopback); batch 2
    per rank and 8 images per rank: 4 iterations per epoch either way."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir',
           str(work_dir), *extra, '--cfg-options', 'train_dataloader.batch_size=2',
           f'train_dataloader.num_workers={num_workers}',
           f'train_dataloader.dataset.indices={8 * ranks}',
           f'train_cfg.max_epochs={EPOCHS}', 'default_hooks.checkpoint.by_epoch=False',
           f'default_hooks.checkpoint.interval={INTERVAL}', 'default_hooks.logger.interval=1',
           'log_processor.window_size=1', 'randomness.seed=0']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    if ranks > 1:
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, str(ranks), *cmd[3:]]
        env.update(PYTHON=sys.executable, PORT=str(free_port()), MASTER_ADDR='127.0.0.1')
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)


def _finish(proc, returncode=0):
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, _ = proc.communicate()
        pytest.fail(f'training did not finish in {RUN_TIMEOUT} s:\n{out[-3000:]}')
    assert proc.returncode == returncode, out[-4000:]
    return out


def _descendants(pid):
    """PIDs of every process below ``pid`` now (ranks, data-loader workers)."""
    children = {}
    for line in subprocess.run(['ps', '-e', '-o', 'pid=,ppid='], capture_output=True,
                               text=True).stdout.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _all_gone(pids, wait_s=10.0):
    """True once none of ``pids`` is alive (zombies count as gone)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _signal_at(proc, marker, signum, group=False, returncode=PREEMPTED):
    """Read the run's output until ``marker`` is logged, send ``signum`` to the trainer (or, with
    ``group``, to every process of the run, data-loader workers included, as Slurm does), return
    all output (the run must stop by itself with status 75)."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            below = [proc.pid] + _descendants(proc.pid)
            if group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
            break
    out = ''.join(lines) + _finish(proc, returncode)
    assert _all_gone(below), 'processes of the preempted run are still alive'
    return out


def _kill_after(proc, work_dir, name):
    pointer = osp.join(work_dir, 'last_checkpoint')
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if osp.isfile(pointer) and open(pointer).read().strip().endswith(name):
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'the run ended before it could be killed:\n' + \
        proc.communicate()[0][-3000:]
    _kill(proc)
    proc.communicate()


def _preempted_at(out, work_dir, signame):
    """The iteration count of the checkpoint the preempted run says it wrote."""
    found = re.search(rf'PreemptionHook: {signame} received; wrote (\S+) after iteration '
                      r'(\d+) \(epoch (\d+), batch (\d+) of 4\); stopping with exit status 75',
                      out)
    assert found, out[-3000:]
    path, it = found.group(1), int(found.group(2))
    assert path == str(work_dir / f'iter_{it}.pth')
    assert (int(found.group(3)) - 1) * PER_EPOCH + int(found.group(4)) == it
    assert open(work_dir / 'last_checkpoint').read().strip() == path
    assert osp.isfile(path) and not osp.exists(work_dir / f'iter_{TOTAL}.pth')
    return it


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('midepoch')
    a_dir, b_dir, c_dir = root / 'a', root / 'b', root / 'c'
    a = _start(a_dir, 0)
    try:
        _kill_after(_start(b_dir, 2), b_dir, f'iter_{INTERVAL}.pth')
        b_out = _finish(_start(b_dir, 2, '--resume'))
        _finish(a)
        # C: SIGUSR1 while epoch 1 runs, SIGTERM while epoch 2 runs, then to the end.
        c1 = _signal_at(_start(c_dir, 2), 'Epoch(train) [1][1/4]', signal.SIGUSR1, group=True)
        first = _preempted_at(c1, c_dir, 'SIGUSR1')  # (checked before the next run)
        c2 = _signal_at(_start(c_dir, 0, '--resume'), 'Epoch(train) [2][1/4]',
                        signal.SIGTERM)
        second = _preempted_at(c2, c_dir, 'SIGTERM')
        c3 = _finish(_start(c_dir, 2, '--resume'))
    except BaseException:
        if a.poll() is None:
            _kill(a)
        shutil.rmtree(root, ignore_errors=True)
        raise
    yield SimpleNamespace(a_dir=a_dir, b_dir=b_dir, c_dir=c_dir, b_out=b_out, c=(c1, c2, c3),
                          preempted_at=(first, second))
    shutil.rmtree(root, ignore_errors=True)


def _assert_same_from(it, a_dir, x_dir):
    logged_a, logged_x = _logged_losses(a_dir), _logged_losses(x_dir)
    assert sorted(logged_a) == list(range(1, TOTAL + 1))
    assert set(range(it + 1, TOTAL + 1)) <= set(logged_x)
    for step in range(it + 1, TOTAL + 1):
        assert logged_x[step] == logged_a[step], f'iteration {step}'
    assert len({logged_a[s]['train/loss'] for s in logged_a}) == TOTAL  # not all equal

    a = _checkpoint_summary(a_dir / f'iter_{TOTAL}.pth')
    x = _checkpoint_summary(x_dir / f'iter_{TOTAL}.pth')
    assert a['meta'] == x['meta'] == (EPOCHS - 1, TOTAL, 0)
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert a[part].keys() == x[part].keys(), part
        differ = [k for k in a[part] if a[part][k] != x[part][k]]
        assert not differ, f'{part} differs in {differ[:5]}'
    for key in ('/global_head.queue', '/global_head.queue_ptr', '/local_head.center',
                '/teacher.steps'):
        assert key in a['state_dict']
    assert a['losses'] == x['losses']
    for key in LOSS_KEYS:
        assert a['losses'][key][-1] == logged_a[TOTAL][key]


def test_iteration_checkpoint_mid_epoch_resumes_bit_for_bit(runs):
    out = runs.b_out
    assert re.search(r'resumed epoch: 0, iter: 3\b', out), out[-3000:]
    assert 'resuming in the middle of epoch 1 at batch 4 of 4 (iteration 4)' in out
    assert 'not an exact continuation' not in out
    # the resumed run trains batch 4 of epoch 1 next, not the epoch's first batch again
    logged = re.findall(r'Epoch\(train\) \[(\d)\]\[(\d)/4\]', out)
    assert logged == [('1', '4')] + [('2', str(i)) for i in range(1, 5)], logged
    _assert_same_from(INTERVAL, runs.a_dir, runs.b_dir)


def test_preempted_twice_by_signals_resumes_bit_for_bit(runs):
    c1, c2, c3 = runs.c
    first, second = runs.preempted_at
    assert 'not in a Slurm job; not requeued' in c1
    assert 1 <= first < PER_EPOCH, first  # inside epoch 1 (not at its end)
    assert re.search(rf'resumed epoch: 0, iter: {first}\b', c2), c2[-3000:]
    assert 'requeue' not in c2.split('SIGTERM received')[1]  # SIGTERM: stop, no requeue
    assert PER_EPOCH + 1 <= second < TOTAL, second
    assert re.search(rf'resumed epoch: 1, iter: {second}\b', c3), c3[-3000:]
    _assert_same_from(second, runs.a_dir, runs.c_dir)
    logged = _logged_losses(runs.c_dir)  # and the first resumed stretch too
    for step in range(first + 1, second + 1):
        assert logged[step] == _logged_losses(runs.a_dir)[step], f'iteration {step}'


@pytest.mark.skipif(not os.environ.get('CMID_SLOW_TESTS'),
                    reason='~1.5 extra minutes; set CMID_SLOW_TESTS=1 to run')
def test_sigterm_to_dist_train_resumes_bit_for_bit(tmp_path):
    """2 DDP ranks (tools/dist_train.sh, 2 persistent workers each): SIGTERM to the launcher
    (torch.distributed.run passes it to the ranks, as on `kill PID` or a cancelled job) during
    epoch 1; both ranks stop after the same iteration, rank 0 writes the checkpoint, no process
    is left; the launcher itself exits 1 (its SignalException). ``--resume``: equal to an
    uninterrupted 2-rank run."""
    a_dir, c_dir = tmp_path / 'a', tmp_path / 'c'
    try:
        _finish(_start(a_dir, 2, ranks=2))
        out = _signal_at(_start(c_dir, 2, ranks=2), 'Epoch(train) [1][1/4]', signal.SIGTERM,
                         returncode=1)
        it = _preempted_at(out, c_dir, 'SIGTERM')
        assert 1 <= it < PER_EPOCH
        out = _finish(_start(c_dir, 2, '--resume', ranks=2))
        assert re.search(rf'resumed epoch: 0, iter: {it}\b', out), out[-3000:]
        _assert_same_from(it, a_dir, c_dir)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the pieces
# --------------------------------------------------------------------------------------------
class _Batches(torch.utils.data.Sampler):
    """A batch sampler that is not torch's BatchSampler (as grouping samplers are)."""

    def __init__(self, sampler, size):
        self.sampler, self.size = sampler, size

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.size:
                yield batch
                batch = []

    def __len__(self):
        return len(self.sampler) // self.size


@pytest.mark.parametrize('custom', [False, True])
def test_batches_from_continues_the_epoch_order(custom):
    data = list(range(10))
    sampler = DefaultSampler(data, shuffle=True, seed=3)
    loader = (DataLoader(data, batch_sampler=_Batches(sampler, 2)) if custom else
              DataLoader(data, batch_size=2, sampler=sampler))
    sampler.set_epoch(4)
    whole = [b.tolist() for b in loader]
    assert len(whole) == 5 and sorted(sum(whole, [])) == data and whole[0] != [0, 1]
    with _batches_from(loader, 3) as rest:
        assert len(loader) == 5  # the loop and the logger still count a whole epoch
        assert [b.tolist() for b in rest] == whole[3:]
    assert [b.tolist() for b in loader] == whole  # the next epoch is whole again


def test_safe_runner_builds_the_mid_epoch_loop():
    from cmid_mm.engine import SafeRunner
    from mmengine.runner import EpochBasedTrainLoop
    runner = SafeRunner.__new__(SafeRunner)
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    assert type(runner.build_train_loop(loop)) is EpochBasedTrainLoop  # objects: unchanged
    loop = MidEpochResumeLoop.__new__(MidEpochResumeLoop)
    loop._iter, loop._epoch, loop.dataloader = 7, 1, [0] * 4
    assert loop.resume_position() == 3


def test_preemption_hook_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown signal 'SIGFOO'"):
        PreemptionHook(signals=('SIGTERM', 'SIGFOO'))
    with pytest.raises(ValueError, match='SIGKILL and SIGSTOP cannot be caught'):
        PreemptionHook(signals=('KILL', ))
    with pytest.raises(ValueError, match=r"requeue_signals \['SIGUSR2'\] are not in"):
        PreemptionHook(requeue_signals=('USR2', ))
    with pytest.raises(ValueError, match="requeue must be 'auto', True or False"):
        PreemptionHook(requeue='yes')
    hook = PreemptionHook(signals=('USR2', 15), requeue_signals=(), exit_code=3)
    assert hook.signals == [signal.SIGUSR2, signal.SIGTERM] and hook.exit_code == 3
