"""The README's main job: tools/train.py on the demo config, run as a user would (subprocess),
shortened to a few iterations. Checks the checkpoint and the separately logged loss terms."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import torch

import cmid_mm  # noqa: F401  (allow-lists Runner checkpoint globals for safe loading)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _train(work_dir, *extra):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
           osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'),
           '--work-dir', str(work_dir), *extra, '--cfg-options',
           'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
           'train_dataloader.dataset.indices=8', 'train_cfg.max_epochs=2',
           'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_demo_config_trains_logs_each_loss_and_checkpoints(tmp_path):
    _train(tmp_path)
    ckpts = sorted(glob.glob(str(tmp_path / 'epoch_*.pth')))
    assert [osp.basename(c) for c in ckpts] == ['epoch_1.pth', 'epoch_2.pth']
    ckpt = torch.load(ckpts[-1], map_location='cpu')  # safe loading, allow-listed globals
    sd = ckpt['state_dict']
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4
    # student, teacher, queue and centre are all in the checkpoint
    assert 'backbone.mask_token' in sd and 'backbone.conv1.weight' in sd
    assert 'teacher.module.backbone.conv1.weight' in sd
    assert sd['global_head.queue'].shape == (1024, 128)
    assert int(sd['global_head.queue_ptr']) == (4 * 2 * 4) % 1024  # 4 steps x 2 views x B=4
    assert sd['local_head.center'].shape == (1, 1024, 1)
    scalars = glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))
    assert scalars
    logs = [json.loads(line) for line in open(scalars[0])]
    train_logs = [r for r in logs if 'loss' in r]
    assert len(train_logs) == 4
    for rec in train_logs:
        assert {'loss_rec', 'loss_global', 'loss_local'} <= set(rec)
        total = rec['loss_rec'] + rec['loss_global'] + rec['loss_local']
        assert abs(rec['loss'] - total) < 1e-3 * max(1.0, abs(total))
