"""Exact resume: a pretraining run killed with SIGKILL after a checkpoint and continued with
``--resume`` (auto) reproduces an uninterrupted run bit for bit (losses and final checkpoint),
with a different number of data-loader workers; ``--resume auto`` never picks a checkpoint a
crash left incomplete. Plus the pieces: the checkpoint check, the fallback order,
PerSampleSeed (also in persistent workers) and ExactResumeHook's checks.
"""
import glob
import hashlib
import json
import logging
import os
import os.path as osp
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import RepeatDataset
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import DataLoader, Dataset

import cmid_mm  # noqa: F401  (registers; allow-lists mmengine checkpoint globals)
from cmid_mm.datasets.transforms import PerSampleSeed
from cmid_mm.utils.checkpoint_guard import checkpoint_problem, find_resumable_checkpoint
from cmid_mm.engine.hooks import ExactResumeHook

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
ITERS_PER_EPOCH, EPOCHS = 2, 3  # 8 images, batch 4
RUN_TIMEOUT = 400  # s per training process; each takes ~15 s of CPU
LOSS_KEYS = ('train/loss', 'train/loss_rec', 'train/loss_global', 'train/loss_local')


# --------------------------------------------------------------------------------------------
# end to end, through tools/train.py
# --------------------------------------------------------------------------------------------
def _cmd(work_dir, num_workers, *extra, ranks=1):
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir',
            str(work_dir), *extra, '--cfg-options',
            f'train_dataloader.batch_size={4 // ranks}',  # 4 images per step in all
            f'train_dataloader.num_workers={num_workers}',
            'train_dataloader.dataset.indices=8', f'train_cfg.max_epochs={EPOCHS}',
            'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
            'log_processor.window_size=1',  # log each iteration's own loss
            'randomness.seed=0']  # no deterministic-algorithms switch needed on CPU


def _start(work_dir, num_workers, *extra, ranks=1):
    cmd = _cmd(work_dir, num_workers, *extra, ranks=ranks)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if ranks > 1:  # tools/dist_train.sh CONFIG N ..., gloo on loopback
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, str(ranks),
               *cmd[3:]]
        env.update(PYTHON=sys.executable, PORT=str(_free_port()), MASTER_ADDR='127.0.0.1')
    # own session: the run and its data-loader workers are one process group to kill
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _finish(proc):
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, _ = proc.communicate()
        pytest.fail(f'training did not finish in {RUN_TIMEOUT} s:\n{out[-3000:]}')
    assert proc.returncode == 0, out[-4000:]
    return out


def _kill(proc):
    """SIGKILL a run: its process group (with data-loader workers) and its direct children
    (torch.distributed.run starts the ranks in sessions of their own)."""
    children = subprocess.run(['pgrep', '-P', str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in children:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:  # already gone with the group
            pass


def _kill_after_first_checkpoint(proc, work_dir):
    """SIGKILL the run as soon as epoch_1.pth is completely written (mmengine writes
    last_checkpoint right after the checkpoint file)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if osp.isfile(pointer) and open(pointer).read().strip().endswith('epoch_1.pth'):
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'the run ended before it could be killed:\n' + \
        proc.communicate()[0][-3000:]
    _kill(proc)
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))
    return out


def _digest(obj, prefix=''):
    """{path: sha256 of the bytes, dtype and shape} of every tensor / array / number in a
    (nested) checkpoint structure: equal digests = bitwise equal values."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_digest(v, f'{prefix}/{k}'))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_digest(v, f'{prefix}/{i}'))
    elif torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous().reshape(-1)
        out[prefix] = (str(t.dtype), tuple(obj.shape),
                       hashlib.sha256(t.view(torch.uint8).numpy().tobytes()
                                      if t.numel() else b'').hexdigest())
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out[prefix] = repr(obj)
    return out


def _checkpoint_summary(path):
    ckpt = torch.load(path, map_location='cpu')  # safe loading (allow-listed globals)
    history = ckpt['message_hub']['log_scalars']
    return dict(
        meta=(ckpt['meta']['epoch'], ckpt['meta']['iter'], ckpt['meta']['seed']),
        state_dict=_digest(ckpt['state_dict']),
        optimizer=_digest(ckpt['optimizer']),
        param_schedulers=_digest(ckpt['param_schedulers']),
        losses={k: history[k].data[0].tolist() for k in LOSS_KEYS})


def _logged_losses(work_dir):
    """{iteration: {key: value}} from every scalars.json of the work dir (each process of a
    run writes its own timestamped folder; later processes overwrite earlier iterations)."""
    logged = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(path):
            rec = json.loads(line)
            if 'loss' in rec:
                logged[rec['step']] = {k: rec[k.split('/')[1]] for k in LOSS_KEYS}
    return logged


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """A: uninterrupted, num_workers=0. B: num_workers=2 (persistent workers), SIGKILLed
    right after epoch_1.pth, then ``--resume`` (auto) to the end. A and B start together."""
    root = tmp_path_factory.mktemp('exact_resume')
    a_dir, b_dir = root / 'a', root / 'b'
    a = _start(a_dir, 0)
    try:
        _kill_after_first_checkpoint(_start(b_dir, 2), b_dir)
        resumed_out = _finish(_start(b_dir, 2, '--resume'))
        _finish(a)
    except BaseException:
        if a.poll() is None:
            _kill(a)
        shutil.rmtree(root, ignore_errors=True)
        raise
    yield SimpleNamespace(a_dir=a_dir, b_dir=b_dir, resumed_out=resumed_out)
    shutil.rmtree(root, ignore_errors=True)  # ~1.3 GB of checkpoints


def _assert_exact_continuation(out, a_dir, b_dir):
    """B (killed, then resumed: ``out``) equals the uninterrupted A after the checkpoint."""
    resumed = re.search(r'resumed epoch: (\d+), iter: (\d+)', out)
    assert resumed, out[-3000:]
    epoch, it = int(resumed.group(1)), int(resumed.group(2))
    assert it == epoch * ITERS_PER_EPOCH and 1 <= epoch < EPOCHS
    assert f'resuming from {b_dir / f"epoch_{epoch}.pth"} (named in last_checkpoint)' in out
    assert 'not an exact continuation' not in out and 'has no PerSampleSeed' not in out

    # Every iteration's loss terms after the checkpoint, as logged: identical (==).
    logged_a, logged_b = _logged_losses(a_dir), _logged_losses(b_dir)
    total = EPOCHS * ITERS_PER_EPOCH
    assert sorted(logged_a) == sorted(logged_b) == list(range(1, total + 1))
    for step in range(it + 1, total + 1):
        assert logged_b[step] == logged_a[step], f'iteration {step}'
    # ... and the losses are not all the same number (a broken comparison would pass).
    assert len({logged_a[s]['train/loss'] for s in logged_a}) == total

    # Final checkpoints: weights and buffers (queue, pointer, centre, teacher and its step
    # count, BN statistics), optimizer, schedulers and the loss history, bitwise.
    a = _checkpoint_summary(a_dir / f'epoch_{EPOCHS}.pth')
    b = _checkpoint_summary(b_dir / f'epoch_{EPOCHS}.pth')
    assert a['meta'] == b['meta'] == (EPOCHS, total, 0)
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert a[part].keys() == b[part].keys(), part
        differ = [k for k in a[part] if a[part][k] != b[part][k]]
        assert not differ, f'{part} differs in {differ[:5]}'
    for key in ('/global_head.queue', '/global_head.queue_ptr', '/local_head.center',
                '/teacher.steps', '/teacher.module.backbone.conv1.weight'):
        assert key in a['state_dict']
    assert a['losses'] == b['losses']  # the message hub's whole loss history
    for key in LOSS_KEYS:  # (it holds each iteration's value, twice in mmengine 0.10)
        assert a['losses'][key][-1] == logged_a[total][key]


def test_sigkilled_run_resumes_bit_for_bit(runs):
    _assert_exact_continuation(runs.resumed_out, runs.a_dir, runs.b_dir)


def test_resume_auto_skips_a_truncated_checkpoint(runs):
    """The newest checkpoint cut short (as by a crash while writing, or a node losing its page
    cache after last_checkpoint was written): --resume auto says so, resumes from the previous
    one and still reaches the uninterrupted run's final state."""
    newest = runs.b_dir / f'epoch_{EPOCHS}.pth'
    previous = runs.b_dir / f'epoch_{EPOCHS - 1}.pth'
    assert open(runs.b_dir / 'last_checkpoint').read().strip() == str(newest)
    size = osp.getsize(newest)
    with open(newest, 'r+b') as f:
        f.truncate(size // 2)
    assert checkpoint_problem(str(newest)) is not None
    out = _finish(_start(runs.b_dir, 0, '--resume'))
    assert (f'skipping checkpoint {newest} (named in last_checkpoint): it has no complete zip '
            'directory') in out, out[-3000:]
    assert f'resuming from {previous} (the newest complete checkpoint of the work dir)' in out
    assert f'resumed epoch: {EPOCHS - 1}, iter: {(EPOCHS - 1) * ITERS_PER_EPOCH}' in out
    a = _checkpoint_summary(runs.a_dir / f'epoch_{EPOCHS}.pth')
    b = _checkpoint_summary(newest)
    assert a['state_dict'] == b['state_dict'] and a['optimizer'] == b['optimizer']
    assert a['losses'] == b['losses']


@pytest.mark.skipif(not os.environ.get('CMID_SLOW_TESTS'),
                    reason='~1 extra minute; set CMID_SLOW_TESTS=1 to run')
def test_sigkilled_two_rank_run_resumes_bit_for_bit(tmp_path):
    """The same with 2 DDP ranks (tools/dist_train.sh, gloo on loopback), batch 2 per rank:
    every process of the job is SIGKILLed after epoch_1.pth."""
    a_dir, b_dir = tmp_path / 'a', tmp_path / 'b'
    try:
        _finish(_start(a_dir, 0, ranks=2))
        _kill_after_first_checkpoint(_start(b_dir, 0, ranks=2), b_dir)
        out = _finish(_start(b_dir, 0, '--resume', ranks=2))
        _assert_exact_continuation(out, a_dir, b_dir)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# checkpoint_guard
# --------------------------------------------------------------------------------------------
def _save(path, value=0.):
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'w': torch.full((4096, ), value)}}, path)
    return str(path)


def test_checkpoint_problem_finds_every_cut(tmp_path):
    good = _save(tmp_path / 'good.pth')
    assert checkpoint_problem(good) is None
    data = open(good, 'rb').read()
    for n in (0, 3, 100, len(data) // 2, len(data) - 23, len(data) - 1):
        cut = tmp_path / f'cut{n}.pth'
        cut.write_bytes(data[:n])
        problem = checkpoint_problem(str(cut))
        assert problem is not None, f'{n} of {len(data)} bytes accepted'
        assert ('empty' in problem) if n == 0 else ('cut short' in problem or 'zip' in problem)
    assert 'cannot be read' in checkpoint_problem(str(tmp_path / 'missing.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    assert 'not a torch zip checkpoint' in checkpoint_problem(str(tmp_path / 'text.pth'))
    with zipfile.ZipFile(tmp_path / 'other.pth', 'w') as z:
        z.writestr('a/readme.txt', 'hello')
    assert 'without a data.pkl' in checkpoint_problem(str(tmp_path / 'other.pth'))


def test_find_resumable_checkpoint_order_and_messages(tmp_path):
    messages = []

    def log(msg, level):
        messages.append((level, msg))

    assert find_resumable_checkpoint(str(tmp_path), log) is None  # empty dir: from scratch
    assert messages[-1][0] == logging.INFO and 'starts from scratch' in messages[-1][1]

    paths = [_save(tmp_path / f'epoch_{i}.pth', i) for i in (1, 2, 3)]
    for i, p in enumerate(paths):  # distinct mtimes, oldest first
        os.utime(p, (1e9 + i, 1e9 + i))
    _save(tmp_path / 'exported_backbone.pth')  # newest, complete, but not a Runner checkpoint
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(paths[2])
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[2]
    assert messages == [(logging.INFO, f'resuming from {paths[2]} (named in last_checkpoint)')]

    # the newest is cut, the one before is empty: fall back to epoch_1, saying why twice
    open(paths[2], 'r+b').truncate(1000)
    open(paths[1], 'w').close()
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[0]
    levels, texts = zip(*messages)
    assert levels == (logging.WARNING, ) * 3
    assert texts[0].startswith(f'skipping checkpoint {paths[2]} (named in last_checkpoint): '
                               'it has no complete zip directory')
    assert texts[1] == (f'skipping checkpoint {paths[1]}: it is empty (0 bytes). Falling back '
                        'to an older one.')
    assert texts[2].startswith(f'resuming from {paths[0]} (the newest complete checkpoint')

    # a work dir moved elsewhere: last_checkpoint names the old absolute path
    pointer.write_text('/nonexistent/old_place/epoch_1.pth')
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[0]
    # an empty last_checkpoint (crash while writing it) and only broken files: from scratch
    pointer.write_text('')
    open(paths[0], 'r+b').truncate(10)
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) is None
    assert len(messages) == 4 and 'no complete checkpoint' in messages[-1][1]


# --------------------------------------------------------------------------------------------
# PerSampleSeed
# --------------------------------------------------------------------------------------------
def _draw(transform, idx, path='img.png'):
    transform(dict(sample_idx=idx, img_path=path))
    return np.random.rand(3).tolist() + [np.random.randint(1 << 30), random.random()]


def test_per_sample_seed_is_a_function_of_seed_epoch_and_sample():
    t = PerSampleSeed()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    assert t(dict(sample_idx=0)) == dict(sample_idx=0)  # not armed: RNGs untouched
    assert np.array_equal(np.random.get_state()[1], before)

    t.set_epoch(seed=7, epoch=2)
    first = _draw(t, 5)
    np.random.rand(100)  # whatever was drawn before does not matter
    assert _draw(t, 5) == first
    other = PerSampleSeed()  # another instance (e.g. in a worker), same arming
    other.set_epoch(seed=7, epoch=2)
    assert _draw(other, 5) == first
    assert _draw(t, 6) != first
    assert _draw(t, 5, 'other.png') != first
    assert _draw(t, 5, '/moved/data/img.png') == first  # only the file name counts
    t.set_epoch(seed=7, epoch=3)
    assert _draw(t, 5) != first
    t.set_epoch(seed=8, epoch=2)
    assert _draw(t, 5) != first

    with pytest.raises(KeyError, match='sample_idx'):
        t(dict(img_path='x.png'))
    with pytest.raises(ValueError, match='epoch must be >= 0'):
        t.set_epoch(0, -1)


class _Draws(Dataset):
    """Each item: the numbers a pipeline starting with PerSampleSeed would draw."""

    def __init__(self, transform, n):
        self.transform, self.n = transform, n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        self.transform(dict(sample_idx=idx))
        return torch.tensor(np.random.randint(1 << 30, size=2))


def test_persistent_workers_follow_the_epoch():
    """Persistent workers are started once; the epoch set later in the main process reaches
    them (shared memory), and they draw what the main process draws alone."""
    t = PerSampleSeed()
    data = _Draws(t, 6)
    loader = DataLoader(data, batch_size=2, num_workers=2, persistent_workers=True)
    try:
        per_epoch = []
        for epoch in range(2):
            t.set_epoch(seed=3, epoch=epoch)
            got = torch.cat(list(loader))
            alone = torch.stack([data[i] for i in range(len(data))])
            assert torch.equal(got, alone), f'epoch {epoch}'
            per_epoch.append(got)
        assert not torch.equal(per_epoch[0], per_epoch[1])
    finally:
        del loader  # stops the workers


# --------------------------------------------------------------------------------------------
# ExactResumeHook
# --------------------------------------------------------------------------------------------
class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(msg)

    info = warning


class _Loader:
    def __init__(self, dataset, sampler_seed, iters_per_epoch=4):
        self.dataset, self.n = dataset, iters_per_epoch
        self.sampler = SimpleNamespace(seed=sampler_seed)

    def __len__(self):
        return self.n


def _runner(dataset, loop_cls=EpochBasedTrainLoop, epoch=0, it=0, seed=5, sampler_seed=5):
    return SimpleNamespace(
        train_dataloader=_Loader(dataset, sampler_seed), train_loop=loop_cls.__new__(loop_cls),
        logger=_Logger(), hooks=[], seed=seed, epoch=epoch, iter=it,
        _randomness_cfg=dict(seed=seed))


def _dataset(*transforms):
    return SimpleNamespace(pipeline=SimpleNamespace(transforms=list(transforms)))


def test_hook_arms_the_pipeline_and_reseeds_by_position():
    seed_t = PerSampleSeed()
    nested = SimpleNamespace(transforms=[SimpleNamespace(transforms=[seed_t])])
    runner = _runner(_dataset(nested), sampler_seed=99)  # e.g. randomness.seed=None resume
    hook = ExactResumeHook()
    hook.before_train(runner)
    assert runner.train_dataloader.sampler.seed == 5 and not [
        m for m in runner.logger.lines if 'PerSampleSeed' in m]
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert seed_t.epoch == 2

    def step(it):
        runner.iter = it
        hook.before_train_iter(runner, 0)
        return torch.rand(2).tolist() + np.random.rand(2).tolist()

    assert step(7) == step(7) and step(7) != step(8)


def test_hook_flags_what_breaks_an_exact_resume():
    hook = ExactResumeHook()
    runner = _runner(_dataset(), epoch=1, it=6)  # 4 iterations per epoch: mid-epoch
    hook.before_train(runner)
    assert any('no PerSampleSeed' in m for m in runner.logger.lines)
    assert any('not an exact continuation' in m for m in runner.logger.lines)

    repeated = RepeatDataset.__new__(RepeatDataset)
    repeated.dataset = _dataset(PerSampleSeed())
    with pytest.raises(ValueError, match='RepeatDataset'):
        hook.before_train(_runner(repeated))
    with pytest.raises(TypeError, match='epoch-based train loop'):
        hook.before_train(_runner(_dataset(PerSampleSeed()), loop_cls=IterBasedTrainLoop))
