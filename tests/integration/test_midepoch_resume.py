"""Exact resume from the middle of an epoch, and preemption.

End to end through tools/train.py (demo config, 8 images, batch 2 -> 4 iterations per epoch,
2 epochs, a checkpoint every 3 iterations, seed 0, OMP_NUM_THREADS=1):

* A: uninterrupted, ``num_workers=0``;
* B: ``num_workers=2``, SIGKILLed as soon as ``iter_3.pth`` (3 of the 4 batches of epoch 1)
  is complete, then ``--resume``: it continues at batch 4 of epoch 1;
* C: ``num_workers=2``, SIGUSR1 to every process of the run (trainer and data-loader workers,
  as Slurm signals a job step) at a random point of epoch 1 -> it finishes the iteration,
  writes ``iter_N.pth``, exits 75 and leaves no process behind; ``--resume`` with
  ``num_workers=0``, sent SIGTERM at a random point of epoch 2 -> the same; ``--resume`` to the
  end.

The signal points are drawn (:class:`SignalPlan`) from a seed that every failure message
shows; ``CMID_PREEMPT_SEED=<seed>`` draws the same points again.

B and C log the same loss terms as A at every iteration after their checkpoints (``==``) and
end with bitwise the same weights, buffers (queue, pointer, centre, teacher), optimizer,
schedulers and loss history. Same machine, same threads, same kernels: the computation is
identical, so bitwise equality is the right test.
"""
import os
import os.path as osp
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import DataLoader

import cmid_mm  # noqa: F401  (registers; allow-lists mmengine checkpoint globals)
from cmid_mm.engine.hooks import PreemptionHook
from cmid_mm.engine.hooks.exact_resume_hook import MidEpochResumeLoop, _batches_from
from tests.integration.slurm_cluster import free_port, pid_alive
from tests.integration.test_exact_resume import (LOSS_KEYS, RUN_TIMEOUT, _checkpoint_summary,
                                                 _finish, _kill, _logged_losses)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
PER_EPOCH, EPOCHS, INTERVAL = 4, 2, 3
TOTAL = PER_EPOCH * EPOCHS
PREEMPTED = 75
SEED_ENV = 'CMID_PREEMPT_SEED'
# A run stops after the iteration in which the signal arrives: the signal sent once batch k's
# log line is read lands in batch k+1 (or, when it beats the hook, still in batch k). Batches
# up to PER_EPOCH - 2 leave one more whole iteration of slack before the epoch ends (a later
# stop would be at the epoch's end, or in the next epoch), so the stop is mid-epoch.
LAST_BATCH = PER_EPOCH - 2
# drawn: where within the next iteration the signal lands, as a fraction of the iteration time
# the marker line logs (seconds would span several iterations on a fast machine)
MAX_DELAY = 0.5


class SignalPlan:
    """Random signal points: for each of ``epochs`` (an epoch, or a tuple of epochs to draw
    one from), a batch (1..LAST_BATCH) after whose log line the signal is sent, and a delay
    after reading that line, as a fraction of the iteration time the line logs. The seed is
    ``$CMID_PREEMPT_SEED`` when set, else fresh; ``str(plan)`` names it and the points (for
    messages)."""

    def __init__(self, epochs, last_batch=LAST_BATCH):
        text = os.environ.get(SEED_ENV, '').strip()
        try:
            self.seed = int(text) if text else int.from_bytes(os.urandom(4), 'big')
        except ValueError:
            raise ValueError(f'{SEED_ENV}={text!r} is not an integer: unset it, or set it to '
                             'the seed a failed run printed') from None
        rng = random.Random(self.seed)
        self.points = []
        for epoch in epochs:
            epoch = rng.choice(epoch) if isinstance(epoch, tuple) else epoch
            self.points.append((epoch, rng.randint(1, last_batch),
                                round(rng.uniform(0, MAX_DELAY), 2)))

    def marker(self, i):
        epoch, batch, _ = self.points[i]
        return f'Epoch(train) [{epoch}][{batch}/{PER_EPOCH}]'

    def iteration(self, i):
        """The iteration (1-based, counted over epochs) whose log line is ``marker(i)``."""
        epoch, batch, _ = self.points[i]
        return (epoch - 1) * PER_EPOCH + batch

    def delay(self, i, line):
        """Seconds to wait after the marker ``line`` (of this run's log) was read."""
        found = re.search(r'\btime: ([0-9.]+)', line)
        assert found, f'no iteration time in the marker line {line!r}'
        return self.points[i][2] * float(found.group(1))

    def __str__(self):
        drawn = '; '.join(f'signal {i + 1} {d:.2f} iterations after batch {b} of epoch {e} '
                          'was logged'
                          for i, (e, b, d) in enumerate(self.points))
        return f'[{SEED_ENV}={self.seed}: {drawn}]'


@contextmanager
def reproducible(plan):
    """Put the seed and the drawn points in front of any assertion or failure message."""
    try:
        yield
    except (AssertionError, pytest.fail.Exception) as e:
        msg = f'{plan}\n{e.args[0] if e.args else ""}'
        e.args = (msg, ) + e.args[1:]
        if isinstance(e, pytest.fail.Exception):
            e.msg = msg
        raise


def _start(work_dir, num_workers, *extra, ranks=1):
    """tools/train.py, or with ``ranks`` > 1 tools/dist_train.sh (gloo on loopback); batch 2
    per rank and 8 images per rank: 4 iterations per epoch either way. With 2 ranks only the
    last checkpoint is written (besides a preemption's): ~1 s less per checkpoint."""
    interval = INTERVAL if ranks == 1 else TOTAL
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir',
           str(work_dir), *extra, '--cfg-options', 'train_dataloader.batch_size=2',
           f'train_dataloader.num_workers={num_workers}',
           f'train_dataloader.dataset.indices={8 * ranks}',
           f'train_cfg.max_epochs={EPOCHS}', 'default_hooks.checkpoint.by_epoch=False',
           f'default_hooks.checkpoint.interval={interval}', 'default_hooks.logger.interval=1',
           'log_processor.window_size=1', 'randomness.seed=0']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    if ranks > 1:
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, str(ranks), *cmd[3:]]
        env.update(PYTHON=sys.executable, PORT=str(free_port()), MASTER_ADDR='127.0.0.1')
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)


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


def _signal_at(proc, plan, i, signum, group=False, returncode=PREEMPTED):
    """Read the run's output until ``plan.marker(i)`` is logged, wait ``plan.delay(i, line)``
    s, send ``signum`` to the trainer (or, with ``group``, to every process of the run,
    data-loader workers included, as Slurm does), return all output (the run must stop by
    itself with status 75)."""
    lines, marker = [], plan.marker(i)
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            time.sleep(plan.delay(i, line))
            below = [proc.pid] + _descendants(proc.pid)
            if group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
            break
    else:
        proc.wait()
        pytest.fail(f'the run ended (status {proc.returncode}) before it logged {marker!r}:\n'
                    + ''.join(lines)[-3000:])
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


_TWO_RANKS = {}  # the one uninterrupted 2-rank run of the session (see two_rank_reference)


def two_rank_reference(request, tmp_path_factory):
    """Work dir of an uninterrupted 2-rank run (tools/dist_train.sh, 16 images, batch 2 per
    rank, ``num_workers=0``), made once per session: the 2-rank dist_train test here and the
    Slurm preemption test (same options, 2 ranks) compare with it. Removed at session end."""
    if 'dir' not in _TWO_RANKS:
        work = tmp_path_factory.mktemp('two_rank_reference')
        request.config.add_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
        _finish(_start(work, 0, ranks=2))
        _TWO_RANKS['dir'] = work
    return _TWO_RANKS['dir']


@pytest.fixture(scope='module')
def two_ranks(request, tmp_path_factory):
    return two_rank_reference(request, tmp_path_factory)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('midepoch')
    a_dir, b_dir, c_dir = root / 'a', root / 'b', root / 'c'
    plan = SignalPlan(epochs=(1, 2))
    print(plan)
    a = _start(a_dir, 0)
    try:
        _kill_after(_start(b_dir, 2), b_dir, f'iter_{INTERVAL}.pth')
        b_out = _finish(_start(b_dir, 2, '--resume'))
        _finish(a)
        # C: SIGUSR1 at a random point of epoch 1, SIGTERM at one of epoch 2, then to the end.
        with reproducible(plan):
            c1 = _signal_at(_start(c_dir, 2), plan, 0, signal.SIGUSR1, group=True)
            first = _preempted_at(c1, c_dir, 'SIGUSR1')  # (checked before the next run)
            c2 = _signal_at(_start(c_dir, 0, '--resume'), plan, 1, signal.SIGTERM)
            second = _preempted_at(c2, c_dir, 'SIGTERM')
            c3 = _finish(_start(c_dir, 2, '--resume'))
        print(f'stopped after iterations {first} and {second}')
    except BaseException:
        if a.poll() is None:
            _kill(a)
        shutil.rmtree(root, ignore_errors=True)
        raise
    yield SimpleNamespace(a_dir=a_dir, b_dir=b_dir, c_dir=c_dir, b_out=b_out, c=(c1, c2, c3),
                          preempted_at=(first, second), plan=plan)
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
    with reproducible(runs.plan):
        assert 'not in a Slurm job; not requeued' in c1
        assert 1 <= first < PER_EPOCH, first  # inside epoch 1 (not at its end)
        assert re.search(rf'resumed epoch: 0, iter: {first}\b', c2), c2[-3000:]
        assert 'requeue' not in c2.split('SIGTERM received')[1]  # SIGTERM: stop, no requeue
        assert PER_EPOCH + 1 <= second < TOTAL, second  # inside epoch 2
        assert re.search(rf'resumed epoch: 1, iter: {second}\b', c3), c3[-3000:]
        _assert_same_from(second, runs.a_dir, runs.c_dir)
        logged = _logged_losses(runs.c_dir)  # and the first resumed stretch too
        for step in range(first + 1, second + 1):
            assert logged[step] == _logged_losses(runs.a_dir)[step], f'iteration {step}'


def test_sigterm_to_dist_train_resumes_bit_for_bit(two_ranks, tmp_path):
    """2 DDP ranks (tools/dist_train.sh, 2 persistent workers each): SIGTERM to the launcher
    (torch.distributed.run passes it to the ranks, as on `kill PID` or a cancelled job) at a
    random point of epoch 1 or 2; both ranks stop after the same iteration, rank 0 writes the
    checkpoint, no process is left; the launcher itself exits 1 (its SignalException).
    ``--resume``: equal to the uninterrupted 2-rank run (``two_ranks``)."""
    c_dir = tmp_path / 'c'
    plan = SignalPlan(epochs=((1, 2), ))  # one signal, in epoch 1 or 2
    print(plan)
    epoch = plan.points[0][0]
    try:
        with reproducible(plan):
            out = _signal_at(_start(c_dir, 2, ranks=2), plan, 0, signal.SIGTERM, returncode=1)
            it = _preempted_at(out, c_dir, 'SIGTERM')
            print(f'stopped after iteration {it}')
            assert (epoch - 1) * PER_EPOCH + 1 <= it < epoch * PER_EPOCH, it  # mid-epoch
            out = _finish(_start(c_dir, 2, '--resume', ranks=2))
            assert re.search(rf'resumed epoch: {epoch - 1}, iter: {it}\b', out), out[-3000:]
            _assert_same_from(it, two_ranks, c_dir)
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
