"""The documented multispectral path, as a user runs it (subprocesses of tools/train.py):
13-band CMID pretraining on the real Sentinel-2 tiles -> export -> one training iteration of
the 13-channel mmseg example config with every backbone weight loaded."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch

import cmid_mm  # noqa: F401  (allow-lists Runner checkpoint globals for safe loading)
from cmid_mm.converters.export import export_checkpoint

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PRETRAIN = osp.join(REPO, 'configs', 'cmid_demo_resnet18_s2-13band.py')
SEG = osp.join(REPO, 'configs', 'segmentation', 'multispectral',
                   'fcn_cmid-r18_s2-13band_example.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def _train(config, work_dir, *options):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
           str(work_dir), '--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def _train_records(work_dir):
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1
    return [r for r in map(json.loads, open(scalars[0])) if 'loss' in r]


def test_13_band_pretraining_exports_into_a_13_channel_segmentation_model(tmp_path):
    pre = tmp_path / 'pretrain'
    _train(PRETRAIN, pre, 'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False', 'train_dataloader.dataset.indices=4',
           'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1',
           'default_hooks.logger.interval=1', 'model.global_head.queue_len=64')
    records = _train_records(pre)
    assert [r['iter'] for r in records] == [1, 2]  # 4 tiles / batch 2
    for r in records:
        assert all(np.isfinite(r[k]) for k in ('loss_rec', 'loss_global', 'loss_local'))
    sd = torch.load(str(pre / 'epoch_1.pth'), map_location='cpu')['state_dict']
    assert sd['backbone.conv1.weight'].shape == (64, 13, 7, 7)  # 13 input bands
    assert sd['mim_head.decoder.0.weight'].shape[0] == 32 * 32 * 13  # rebuilds 13 bands
    assert not torch.equal(sd['backbone.conv1.weight'],
                           sd['teacher.module.backbone.conv1.weight'])  # trained

    weights = str(tmp_path / 'cmid_r18_s2-13band.pth')
    exported = export_checkpoint(torch.load(str(pre / 'epoch_1.pth'), map_location='cpu'))
    torch.save(exported, weights)
    assert torch.equal(exported['state_dict']['backbone.conv1.weight'],
                       sd['backbone.conv1.weight'])

    seg = tmp_path / 'seg'
    log = _train(SEG, seg, f'model.backbone.init_cfg.checkpoint={weights}',
                 'train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=2',
                 'train_cfg.max_epochs=1', 'train_cfg.val_interval=2')
    assert f'load backbone. in model from: {weights}' in log
    assert 'missing keys in source state_dict' not in log
    assert 'unexpected key in source state_dict' not in log
    records = _train_records(seg)
    assert [r['iter'] for r in records] == [1]
    assert np.isfinite(records[0]['loss']) and 'decode.loss_ce' in records[0]
    seg_sd = torch.load(str(seg / 'epoch_1.pth'), map_location='cpu')['state_dict']
    assert seg_sd['backbone.conv1.weight'].shape == (64, 13, 7, 7)
