"""One real tools/train.py run on the demo config that skips a broken file and then meets a
non-finite loss: it stops naming the term and keeps the last good checkpoint."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401  (registers the CMID modules, safe checkpoint loading)
from tests.test_datasets.bad_files import folder_with_bad_files
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


NAN_MODULE = '''
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from cmid_mm.models.losses import DINOLocalLoss


@MODELS.register_module()
class NaNAtIterLocalLoss(DINOLocalLoss):
    """The DINO local loss, made NaN at one iteration (test fault injection)."""

    def __init__(self, nan_iter, **kwargs):
        super().__init__(**kwargs)
        self.nan_iter = nan_iter

    def forward(self, student, teacher):
        loss = super().forward(student, teacher)
        if MessageHub.get_current_instance().get_info('iter') == self.nan_iter:
            loss = loss * float('nan')
        return loss
'''


def test_train_run_skips_broken_file_then_stops_on_nan_keeping_last_checkpoint(tmp_path):
    """tools/train.py on the demo config, 5 files (one truncated), 2 images per step, 2 steps
    per epoch; the local loss turns NaN at iteration 3 (the 2nd step of epoch 2)."""
    folder_with_bad_files(tmp_path / 'data', n_bad=1, n_good=4, name='images')  # the demo's data_prefix
    (tmp_path / 'nan_inject.py').write_text(NAN_MODULE)
    (tmp_path / 'nan_cfg.py').write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['cmid_mm', 'nan_inject'], allow_failed_imports=False)\n"
        "model = dict(local_loss=dict(type='NaNAtIterLocalLoss', nan_iter=3))\n")
    work = tmp_path / 'work'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(tmp_path / 'nan_cfg.py'),
           '--work-dir', str(work), '--cfg-options',
           f'train_dataloader.dataset.data_root={tmp_path / "data"}',
           'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.sampler.shuffle=False', 'train_cfg.max_epochs=2',
           'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
           'train_dataloader.dataset.pipeline.1.on_error=skip']  # as in millionaid_cmid.py
    env = dict(ENV, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # stopped at iteration 3 naming only the local term
    assert "FloatingPointError: non-finite CMID loss at iteration 3: {'loss_local': nan}" \
        in proc.stderr, out[-3000:]
    # the broken file was skipped, named, and counted at the end of epoch 1 (at least once:
    # its random replacement can be itself; mmengine's logger shows a repeated warning once)
    bad = str(tmp_path / 'data' / 'images' / 'a_bad0.png')
    lines = out.splitlines()
    end1 = next(i for i, line in enumerate(lines) if 'skipped images:' in line)
    assert any(f'skipped image (unreadable): {bad}:' in line for line in lines[:end1])
    summary = re.search(r'skipped images: (\d+) in epoch 1 \(unreadable=(\d+)\)', lines[end1])
    assert summary and int(summary[1]) == int(summary[2]) >= 1, lines[end1]
    # the last good checkpoint: epoch 1, complete, finite and loadable into the model
    assert (work / 'epoch_1.pth').is_file()
    assert not glob.glob(str(work / 'epoch_2*'))
    assert open(work / 'last_checkpoint').read().strip().endswith('epoch_1.pth')
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    sd = ckpt['state_dict']
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    model = MODELS.build(Config.fromfile(DEMO).model)
    model.load_state_dict(sd, strict=True)  # strict: every key of the model, no extra
    # epoch 1 ran its two steps: the DINO centre moved away from its zero initialisation
    assert sd['local_head.center'].abs().sum() > 0
