"""Distributed CMID on CPU with real processes (torch.distributed gloo on 127.0.0.1).

ddp_cmid_worker.py trains tiny CMIDs wrapped in DeviceAgnosticDDP on a fixed global batch of 4
(fixed tensors: no sampler, no augmentation), once with 2 ranks x 2 images and once with
1 rank x 4 images, and dumps every rank's state after each of 3 SGD steps. The tests check:

* the MoCo queue receives the teacher keys of all ranks exactly once per step, in rank order,
  view B then view A, and is bitwise identical on all ranks;
* the DINO centre, the EMA teacher and the student are bitwise identical on all ranks
  (BatchNorm running statistics are the one rank-local state, and only with BN);
* 2 ranks x 2 images = 1 rank x 4 images (losses, gradients, parameters, teacher, centre,
  queue) to float32 rounding where the maths says so: no BatchNorm, and the focal frequency
  loss off (it averages spectra over the batch of one rank); with either of them on, the
  quantities that depend on them differ by orders of magnitude more than the tolerance;
* torch's SyncBatchNorm refuses CPU tensors, so the GPU configs' ``sync_bn='torch'`` is
  dropped on CPU.

Then tools/dist_train.sh runs the demo config with 2 ranks, and the soak tool runs briefly.
Tolerances (relative, per tensor, ||a - b|| <= rtol * ||b||) and measured worst cases on
2 cores: gradients at step 0 1e-5 (measured 8e-7), at steps 1-2 1e-4 (1.5e-5: the step-0
rounding differences grow through the updates), parameters / teacher / centre 1e-5 (1.1e-6),
queue entries 1e-5 absolute (2.7e-7, unit vectors), losses 1e-5 relative (1e-6).
"""
import glob
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cmid_mm  # noqa: F401  (registers CMID; allow-lists mmengine checkpoint globals)

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.abspath(osp.join(HERE, '..', '..'))
WORKER = osp.join(HERE, 'ddp_cmid_worker.py')
EXACT = ('swin', 'vit')  # no BatchNorm, focal frequency loss off
RUNS_1 = 'swin,vit,swin_freq,resnet_bn'
RUNS_2 = RUNS_1 + ',swin_rankseed'
STEPS, GLOBAL, QUEUE_LEN = 3, 4, 16
RTOL_GRAD0, RTOL_GRAD, RTOL_STATE, ATOL_QUEUE, RTOL_LOSS = 1e-5, 1e-4, 1e-5, 1e-5, 1e-5

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='tests the CPU (gloo) path')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if osp.isdir('/sys/class/net/lo'):
        env['GLOO_SOCKET_IFNAME'] = 'lo'  # gloo's own connections on loopback too
    return env


def _torchrun(nproc, out_dir, runs):
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           '--master_addr=127.0.0.1', f'--master_port={_free_port()}', WORKER, str(out_dir),
           '--runs', runs, '--steps', str(STEPS), '--global-batch', str(GLOBAL)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope='module')
def dumps(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    _torchrun(2, out, RUNS_2)
    _torchrun(1, out, RUNS_1)

    def load(run, world, rank=0):
        return torch.load(out / f'{run}_w{world}_r{rank}.pt', weights_only=False)

    load.dir = out
    return load


def _rel(a, b):
    """||a - b|| / ||b|| (0 when both are 0)."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item() if b.norm() > 0 else \
        a.norm().item()


def _is_bn_stat(key):
    return key.rsplit('.', 1)[-1] in ('running_mean', 'running_var', 'num_batches_tracked')


# ------------------------------------------------------------------- queue, one step at a time
@pytest.mark.parametrize('run', EXACT)
def test_queue_receives_each_rank_keys_exactly_once(dumps, run):
    ranks = [dumps(run, 2, r) for r in range(2)]
    per_rank = ranks[0]['per_rank']
    assert per_rank == GLOBAL // 2
    previous = ranks[0]['init_state']['global_head.queue']
    for step in range(STEPS):
        recs = [d['records'][step] for d in ranks]
        queue = recs[0]['state']['global_head.queue']
        assert torch.equal(queue, recs[1]['state']['global_head.queue'])  # bitwise, all ranks
        ptr = recs[0]['ptr_before']
        assert ptr == (step * 2 * GLOBAL) % QUEUE_LEN
        new_ptr = int(recs[0]['state']['global_head.queue_ptr'])
        # 2 views x 2 ranks x 2 images; the reference's double gather would add 16
        assert new_ptr == (ptr + 2 * 2 * per_rank) % QUEUE_LEN
        # keys captured at each rank's teacher projector, [view A, view B]
        key_a = [F.normalize(r['keys'][0], dim=1) for r in recs]
        key_b = [F.normalize(r['keys'][1], dim=1) for r in recs]
        assert not torch.allclose(key_b[0], key_b[1])  # the ranks saw different images
        expected = torch.cat([key_b[0], key_b[1], key_a[0], key_a[1]])  # B then A, rank order
        rows = (ptr + torch.arange(len(expected))) % QUEUE_LEN
        torch.testing.assert_close(queue[rows], expected, rtol=0, atol=1e-6)
        # each key exactly once in the whole queue (the reference bug: world_size times)
        dist = (queue[:, None, :] - expected[None]).abs().amax(-1)  # (queue row, key)
        assert ((dist < ATOL_QUEUE).sum(0) == 1).all()
        # the other rows are untouched
        others = torch.ones(QUEUE_LEN, dtype=torch.bool)
        others[rows] = False
        assert torch.equal(queue[others], previous[others])
        previous = queue


# -------------------------------------------------------------- state identical on every rank
@pytest.mark.parametrize('run', ['swin', 'vit', 'swin_freq', 'resnet_bn'])
def test_student_teacher_centre_queue_bitwise_equal_across_ranks(dumps, run):
    ranks = [dumps(run, 2, r) for r in range(2)]
    for step in range(STEPS):
        a, b = (d['records'][step] for d in ranks)
        for name in a['grads']:  # all-reduced gradients
            assert torch.equal(a['grads'][name], b['grads'][name]), (step, name)
        rank_local = []
        for key in a['state']:
            if torch.equal(a['state'][key], b['state'][key]):
                continue
            assert _is_bn_stat(key), f'step {step}: {key} differs between ranks'
            rank_local.append(key)
        if run == 'resnet_bn':
            # BatchNorm running statistics (student and teacher) follow each rank's batch;
            # training uses batch statistics, a checkpoint holds rank 0's.
            assert any(k.startswith('teacher.') for k in rank_local)
            assert any(k.startswith('backbone.') for k in rank_local)
        else:
            assert rank_local == []
    # the things the issue names, spelled out
    last = [d['records'][-1]['state'] for d in ranks]
    for key in ('local_head.center', 'global_head.queue', 'global_head.queue_ptr',
                'teacher.steps'):
        assert torch.equal(last[0][key], last[1][key]), key
    assert last[0]['local_head.center'].abs().sum() > 0
    assert int(last[0]['teacher.steps']) == STEPS


def test_queue_synchronised_at_wrap_when_ranks_seed_differently(dumps):
    """Each rank builds its model from its own seed (randomness.diff_rank_seed=True): DDP
    broadcasts the parameters, DeviceAgnosticDDP also the buffers (the random queue), so the
    run is bitwise the same-seed run."""
    seeded = [dumps('swin_rankseed', 2, r) for r in range(2)]
    plain = [dumps('swin', 2, r) for r in range(2)]
    assert torch.equal(seeded[0]['init_state']['global_head.queue'],
                       seeded[1]['init_state']['global_head.queue'])
    for rank in range(2):
        for step in range(STEPS):
            got, want = seeded[rank]['records'][step], plain[rank]['records'][step]
            assert got['losses'] == want['losses']
            for key in want['state']:
                assert torch.equal(got['state'][key], want['state'][key]), (rank, step, key)


# ---------------------------------------------------------------- 2 ranks x B == 1 rank x 2B
def _mean_losses(ranks, step):
    recs = [d['records'][step]['losses'] for d in ranks]
    return {k: sum(r[k] for r in recs) / len(recs) for k in recs[0]}


@pytest.mark.parametrize('run', EXACT)
def test_two_ranks_equal_one_process_with_twice_the_batch(dumps, run):
    ranks = [dumps(run, 2, r) for r in range(2)]
    single = dumps(run, 1)
    assert single['per_rank'] == GLOBAL
    for step in range(STEPS):
        two, one = ranks[0]['records'][step], single['records'][step]
        # per-image means: the average over ranks is the mean over the global batch
        mean = _mean_losses(ranks, step)
        for k, v in one['losses'].items():
            assert abs(mean[k] - v) <= RTOL_LOSS * max(1.0, abs(v)), (step, k, mean[k], v)
        rtol = RTOL_GRAD0 if step == 0 else RTOL_GRAD
        for name, g in one['grads'].items():
            assert _rel(two['grads'][name], g) <= rtol, (step, name)
        for key, v in one['state'].items():
            if key == 'global_head.queue':  # same keys in the same rows (rank order)
                torch.testing.assert_close(two['state'][key], v, rtol=0, atol=ATOL_QUEUE)
            elif v.is_floating_point():  # student, teacher, centre
                assert _rel(two['state'][key], v) <= RTOL_STATE, (step, key)
            else:  # queue pointer, EMA step count
                assert torch.equal(two['state'][key], v), (step, key)


def _module_rel(two, one, module):
    return max(_rel(two['grads'][n], g) for n, g in one['grads'].items()
               if n.startswith(module + '.'))


def test_focal_frequency_loss_is_not_a_per_image_mean(dumps):
    """The frequency term averages the spectra over the batch of a rank before squaring, so
    two half batches give another loss (and gradient) than the whole batch. At step 0 (same
    weights) everything the reconstruction branch does not touch still matches."""
    ranks = [dumps('swin_freq', 2, r) for r in range(2)]
    two, one = ranks[0]['records'][0], dumps('swin_freq', 1)['records'][0]
    mean = _mean_losses(ranks, 0)
    for k in ('loss_global', 'loss_local'):
        assert abs(mean[k] - one['losses'][k]) <= RTOL_LOSS * max(1.0, one['losses'][k])
    assert abs(mean['loss_rec'] - one['losses']['loss_rec']) > 1e-2 * one['losses']['loss_rec']
    for module in ('global_neck', 'local_neck'):
        assert _module_rel(two, one, module) <= RTOL_GRAD0, module
    for module in ('mim_head', 'backbone'):
        assert _module_rel(two, one, module) > 100 * RTOL_GRAD0, module
    for key in ('local_head.center', 'global_head.queue'):
        assert _rel(two['state'][key], one['state'][key]) <= RTOL_STATE, key


def test_batchnorm_makes_two_ranks_differ_from_one_process(dumps):
    """BatchNorm normalises with the statistics of each rank's 2 images (no SyncBN on CPU), so
    a 2-rank step is not a 4-image step: every part of the student gets another gradient."""
    ranks = [dumps('resnet_bn', 2, r) for r in range(2)]
    two, one = ranks[0]['records'][0], dumps('resnet_bn', 1)['records'][0]
    for module in ('backbone', 'mim_head', 'global_neck', 'local_neck'):
        assert _module_rel(two, one, module) > 1e-2, module
    mean = _mean_losses(ranks, 0)
    assert abs(mean['loss_local'] - one['losses']['loss_local']) > 1e-2


def test_torch_syncbn_refuses_cpu_tensors(dumps):
    for rank in range(2):
        probe = json.load(open(dumps.dir / f'syncbn_w2_r{rank}.json'))
        assert (probe['world'], probe['backend']) == (2, 'gloo')
        assert probe['result'].startswith('ValueError: SyncBatchNorm expected input tensor to '
                                          'be on GPU')


# ------------------------------------------------------------------------ SyncBN in configs
def test_resnet_configs_use_syncbn_and_the_converted_model_steps():
    """The ResNet configs ask mmengine for torch SyncBN when distributed (GPU). The conversion
    reaches the EMA teacher and the local head too, and the converted model trains (here
    without a process group, where SyncBN computes plain batch statistics)."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.model import convert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    for name in ('cmid_resnet50_pretrain.py', 'cmid_demo_resnet18_rs-sample.py'):
        assert Config.fromfile(osp.join(REPO, 'configs', name)).sync_bn == 'torch', name
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = convert_sync_batchnorm(MODELS.build(cfg.model), 'torch')
    sync = [n for n, m in model.named_modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    plain = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and not isinstance(m, torch.nn.SyncBatchNorm)]
    assert plain == []
    student = [n for n in sync if not n.startswith('teacher.')]
    assert {n.split('.')[0] for n in student} == {'backbone', 'local_neck'}
    assert sorted('teacher.module.' + n for n in student) == sorted(
        n for n in sync if n.startswith('teacher.'))
    MessageHub.get_current_instance().update_info('max_iters', 10)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(2, 3, 128, 128, generator=g) for _ in range(2)]
    samples = []
    for i in range(2):
        ds = DataSample()
        mask = np.zeros((2, 32, 32), np.uint8)
        mask[0, :16], mask[1, :, 16:] = 1, 1
        ds.set_mask(mask)
        ds.set_field(np.array([[0, 0, 120, 120], [10, 20 + i, 100, 90]], np.float32),
                     'crop_bbox')
        ds.set_field(np.array([[160, 160], [160, 160]]), 'crop_src_shape')
        ds.set_field(np.array([False, True]), 'flip')
        samples.append(ds)
    losses = model.loss(views, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.bn1.weight.grad.abs().sum() > 0


# -------------------------------------------------------------- tools/dist_train.sh, 2 ranks
def test_dist_train_sh_two_ranks_demo(tmp_path):
    env = dict(_env(), PYTHON=sys.executable, PORT=str(_free_port()))
    cmd = ['bash', 'tools/dist_train.sh', 'configs/cmid_demo_resnet18_rs-sample.py', '2',
           '--work-dir', str(tmp_path), '--cfg-options', 'train_dataloader.batch_size=2',
           'train_dataloader.num_workers=0', 'train_dataloader.dataset.indices=8',
           'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
           'default_hooks.checkpoint.interval=1',
           'log_level=DEBUG']  # mmengine writes one log file per rank at DEBUG
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # CPU: gloo instead of nccl, no SyncBN; both said once per rank
    assert proc.stderr.count("dist backend 'nccl' needs CUDA") == 2
    assert proc.stderr.count("sync_bn='torch' ignored: no GPU") == 2

    iters = 8 // (2 * 2)  # images / (ranks x batch)
    losses, texts = {}, {}
    for rank in range(2):
        logs = glob.glob(str(tmp_path / '*' / f'*rank{rank}.log'))
        assert len(logs) == 1, f'no log file of rank {rank}'
        text = texts[rank] = open(logs[0]).read()
        lines = re.findall(r'Epoch\(train\) \[1\]\[(\d+)/(\d+)\].*?loss: ([\d.]+)', text)
        assert [(int(i), int(n)) for i, n, _ in lines] == [(i + 1, iters) for i in range(iters)]
        losses[rank] = [float(v) for _, _, v in lines]
    assert losses[0] != losses[1]  # each rank trained on its own images
    assert 'Distributed training: True' in texts[0]

    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == iters
    sd = ckpt['state_dict']
    # every step enqueues 2 views x 2 ranks x 2 images
    assert int(sd['global_head.queue_ptr']) == iters * 2 * 2 * 2
    assert not any(k.startswith('module.') for k in sd)  # the unwrapped model is saved


# -------------------------------------------------------------------------- soak, shortened
def test_soak_tool_short_run(tmp_path):
    """8 iterations over 2 epochs of 8 images: the same 2 persistent workers serve both
    epochs, memory is sampled, and nothing of the run is alive afterwards."""
    out = tmp_path / 'soak.json'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'analysis_tools', 'soak_test.py'),
           '--iters', '8', '--batch-size', '2', '--log-interval', '2', '--interval', '0.25',
           '--work-dir', str(tmp_path / 'wd'), '--out', str(out), '--max-slope', '1e9',
           '--cfg-options', 'train_dataloader.dataset.indices=8']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.load(open(out))
    assert (report['iterations'], report['epochs'], report['iters_per_epoch']) == (8, 2, 4)
    assert report['returncode'] == 0 and report['survivors'] == []
    assert report['worker_processes_seen'] == 2  # persistent: not 2 new workers per epoch
    assert [s['iter'] for s in report['samples']] == [2, 4, 6, 8]
    for s in report['samples']:
        assert 100 < s['rss_main'] < 20000 and len(s['rss_workers']) == 2
    trainer = report['trainer_rss_mb']
    assert trainer['start'] <= trainer['max'] and trainer['end'] <= trainer['max']
    assert trainer['slope_mb_per_100_iters'] is not None
    assert 'PASS' in proc.stdout


def test_soak_tool_sigterm_leaves_no_worker(tmp_path):
    """SIGTERM to the trainer mid-run (what torchrun does to the other ranks when one fails):
    its persistent workers go with it (tools/train.py gives them PR_SET_PDEATHSIG). Without
    that, a worker whose batch waits in the full result pipe blocks forever at exit; the demo
    batch of 16 (~38 KB per pickled batch, more than half the 64 KB pipe) makes that likely."""
    out = tmp_path / 'soak.json'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'analysis_tools', 'soak_test.py'),
           '--iters', '20', '--batch-size', '16', '--log-interval', '1',
           '--terminate-after', '1', '--grace', '5', '--work-dir', str(tmp_path / 'wd'),
           '--out', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    report = json.load(open(out))
    # PreemptionHook (pretraining configs): SIGTERM finishes the iteration, writes a
    # checkpoint and exits with 75 (docs/resume.md); the workers must be gone all the same
    assert report['terminated_after'] == 1 and report['returncode'] == 75
    assert report['worker_processes_seen'] == 2
    assert report['survivors'] == [], report['survivors']
    # PR_SET_PDEATHSIG kills the workers at once; the workers' own parent watchdog polls
    # every 5 s: gone well before that means the signal did it (margin for a loaded CI)
    assert report['all_gone_after_s'] < 4.0
    assert proc.returncode == 0, proc.stdout[-3000:]
