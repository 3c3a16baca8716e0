"""A complete but damaged checkpoint is never resumed silently; a checkpoint with non-finite
weights is never written; a non-finite loss names the checkpoint to resume from.

Real mmengine Runner checkpoints (a small model trained by ``SafeRunner``), damaged the way a
power loss or a bad copy leaves them: 4 KB zeroed inside a tensor record (size and zip directory
intact) or at a record's local header.
"""
import logging
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.hooks import Hook

import cmid_mm  # noqa: F401
from cmid_mm.engine import CheckpointIntegrityError, NonFiniteStateError
from cmid_mm.utils.checkpoint_guard import checkpoint_problem, find_resumable_checkpoint
from tests.test_trust.toy_runner import safe_runner

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def _record_data_offset(path, name_suffix):
    """Byte offset and size of the data of the zip record whose name ends with the suffix."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(name_suffix))
    with open(path, 'rb') as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), 'little') for _ in range(2))
    return info, info.header_offset + 30 + name_len + extra_len


def _largest_record(path):
    with zipfile.ZipFile(path) as archive:
        return max((i for i in archive.infolist() if '/data/' in i.filename),
                   key=lambda i: i.file_size).filename


def _zero(path, offset, n=4096):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(b'\0' * n)


@pytest.fixture
def trained(tmp_path):
    """iter_2.pth and iter_4.pth of a real run."""
    safe_runner(tmp_path, max_iters=4).train()
    assert checkpoint_problem(str(tmp_path / 'iter_4.pth')) is None
    return tmp_path


def test_zeroed_tensor_bytes_are_found_and_resume_auto_falls_back(trained):
    newest = str(trained / 'iter_4.pth')
    size = osp.getsize(newest)
    record = _largest_record(newest)
    info, start = _record_data_offset(newest, record)
    assert info.file_size >= 16384
    _zero(newest, start + 4096)
    assert osp.getsize(newest) == size
    # the damage is silent to torch: the file loads and the weight simply holds zeros
    loaded = torch.load(newest, map_location='cpu')
    assert any((v == 0).sum() >= 1024 for v in loaded['state_dict'].values())
    problem = checkpoint_problem(newest)
    assert problem is not None and problem.startswith('is damaged') and record in problem
    logs = []
    chosen = find_resumable_checkpoint(str(trained), lambda m, level: logs.append((level, m)))
    assert chosen == str(trained / 'iter_2.pth')
    assert any(level == logging.WARNING and 'iter_4.pth' in m and 'is damaged' in m
               for level, m in logs), logs


def test_zeroed_record_header_is_found(trained):
    newest = str(trained / 'iter_4.pth')
    info, _ = _record_data_offset(newest, _largest_record(newest))
    _zero(newest, info.header_offset)
    problem = checkpoint_problem(newest)
    assert problem is not None and 'is damaged' in problem and info.filename in problem
    assert find_resumable_checkpoint(str(trained), lambda m, level: None) == \
        str(trained / 'iter_2.pth')


def test_explicit_resume_of_a_damaged_file_stops_naming_the_intact_one(trained):
    newest = str(trained / 'iter_4.pth')
    _, start = _record_data_offset(newest, _largest_record(newest))
    _zero(newest, start)
    runner = safe_runner(trained / 'again', max_iters=6, resume=True, load_from=newest)
    with pytest.raises(CheckpointIntegrityError) as err:
        runner.train()
    msg = str(err.value)
    assert newest in msg and 'is damaged' in msg and str(trained / 'iter_2.pth') in msg
    # the intact one resumes
    ok = safe_runner(trained / 'again2', max_iters=6, resume=True,
                 load_from=str(trained / 'iter_2.pth'))
    ok.train()
    assert ok.iter == 6


class Poison(Hook):
    """Turns one weight into Inf after a given iteration (training diverged)."""

    def __init__(self, after_iter):
        self.after_iter = after_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.after_iter:
            with torch.no_grad():
                runner.model.wide.weight[3, 5] = float('inf')


def test_non_finite_weights_are_never_saved(tmp_path):
    runner = safe_runner(tmp_path, max_iters=4, interval=1, hooks=[Poison(after_iter=3)])
    with pytest.raises(NonFiniteStateError) as err:
        runner.train()
    msg = str(err.value)
    assert 'state_dict.wide.weight holds 1 non-finite value(s) of 4096' in msg
    assert f'--resume {tmp_path / "iter_2.pth"}' in msg
    assert not (tmp_path / 'iter_3.pth').exists()
    assert open(tmp_path / 'last_checkpoint').read().strip().endswith('iter_2.pth')


def test_non_finite_optimizer_state_is_never_saved(tmp_path):

    class PoisonMomentum(Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == 2:
                state = runner.optim_wrapper.optimizer.state[runner.model.out.bias]
                state['momentum_buffer'].fill_(float('nan'))

    runner = safe_runner(tmp_path, max_iters=3, interval=1, hooks=[PoisonMomentum()])
    with pytest.raises(NonFiniteStateError, match=r'optimizer\.state\.\d+\.momentum_buffer'):
        runner.train()
    assert not (tmp_path / 'iter_2.pth').exists()
    assert (tmp_path / 'iter_1.pth').exists()


LR_CONFIG = '''
_base_ = [{demo!r}]
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr={lr}, momentum=0.9))
param_scheduler = []
'''


def test_diverged_run_names_the_checkpoint_to_resume_from(tmp_path):
    """The issue's run: SGD with lr 1e30 on the demo config, one step per epoch. The loss of the
    first steps is finite, the weights explode, a later step is non-finite. The error must say
    which checkpoint holds the weights that gave the non-finite loss and which one precedes them;
    no checkpoint written holds non-finite numbers."""
    data = tmp_path / 'data' / 'images'
    data.mkdir(parents=True)
    sample = osp.join(REPO, 'data', 'rs_sample', 'images')
    for name in sorted(os.listdir(sample))[:2]:
        (data / name).write_bytes(open(osp.join(sample, name), 'rb').read())
    cfg = tmp_path / 'lr.py'
    cfg.write_text(LR_CONFIG.format(demo=osp.join(REPO, 'configs',
                                                  'cmid_demo_resnet18_rs-sample.py'), lr=1e30))
    work = tmp_path / 'work'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(cfg), '--work-dir',
           str(work), '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path / "data"}',
           'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'model.global_head.queue_len=64', 'default_hooks.checkpoint.interval=1',
           'default_hooks.logger.interval=1', 'train_cfg.max_epochs=6']
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    saved = sorted(work.glob('epoch_*.pth'))
    for path in saved:  # nothing non-finite on disk
        sd = torch.load(path, map_location='cpu')['state_dict']
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point()), path
    tail = proc.stderr.strip().splitlines()[-1]
    assert 'FloatingPointError' in tail, out[-3000:]
    if 'non-finite CMID loss at iteration' in tail:
        it = int(tail.split('non-finite CMID loss at iteration ')[1].split(':')[0])
        holder = work / f'epoch_{it}.pth'  # one step per epoch: written after `it` steps
        assert holder.exists() and f'{holder} was written after iteration {it - 1}' in tail
        if it > 1:
            assert f'--resume {work / f"epoch_{it - 1}.pth"}' in tail, tail
    else:  # the weights became Inf/NaN before a loss did: refused at save time
        assert 'not saving' in tail and 'non-finite value(s)' in tail, tail


class LossTurnsNaN(Hook):
    """Raises what CMID raises on a non-finite loss, at one iteration."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == 3:
            raise FloatingPointError('non-finite CMID loss at iteration 3: {...}.')


def test_non_finite_loss_names_the_checkpoints_around_it_and_ignores_stale_ones(tmp_path):
    import shutil
    safe_runner(tmp_path / 'earlier', max_iters=2).train()
    # a stale, intact checkpoint of an earlier, longer run in the same work dir
    shutil.copy(tmp_path / 'earlier' / 'iter_2.pth', tmp_path / 'iter_9.pth')
    later = os.path.getmtime(tmp_path / 'iter_9.pth') + 3600  # and the newest file
    os.utime(tmp_path / 'iter_9.pth', (later, later))
    runner = safe_runner(tmp_path, max_iters=6, interval=1, hooks=[LossTurnsNaN()])
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert msg.startswith('non-finite CMID loss at iteration 3')
    assert f'{tmp_path / "iter_3.pth"} was written after iteration 2 and holds the weights' in msg
    assert f'--resume {tmp_path / "iter_2.pth"} and a lower lr' in msg
    assert 'iter_9' not in msg
