"""End to end: tools/train.py runs the LEVIR-CD UperNet config (ResNet-18 depth for speed) for
2 iterations + validation (CDIoUMetric: mFscore, changed_F1) on the tiny real pair, starting
from weights exported from a tiny CMID checkpoint."""
import json
import os
import os.path as osp
import subprocess
import sys

import torch

from tests.test_downstream.test_changedet.cd_utils import REPO, TINY


def test_train_two_iterations_and_validate_from_cmid_weights(tmp_path, cmid_r18_backbone):
    work = tmp_path / 'work'
    options = [
        # ResNet-18 instead of -50 (the tiny CMID is a ResNet-18), heads sized to match
        'model.backbone.depth=18',
        'model.decode_head.in_channels=[128,256,512,1024]',
        'model.decode_head.channels=32',
        'model.auxiliary_head.in_channels=512',
        'model.auxiliary_head.channels=16',
        f'model.backbone.init_cfg.checkpoint={cmid_r18_backbone}',
        f'train_dataloader.dataset.data_root={TINY}',
        f'val_dataloader.dataset.data_root={TINY}',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.2.crop_size=(48,48)',  # 64 px tiles
        'val_dataloader.dataset.pipeline.1.scale=(64,64)',  # test resize: keep 64 px
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
    ]
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
           osp.join(REPO, 'configs', 'changedet', 'siam-upernet_cmid-r50_40k_levir-cd-512x512.py'),
           '--work-dir', str(work), '--cfg-options', *options]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]

    # the CMID export was read, with no key left behind
    assert f'Loads checkpoint by local backend from path: {cmid_r18_backbone}' in log
    assert 'missing keys' not in log and 'unexpected key' not in log

    # 2 training iterations logged, then one validation with the change-detection metrics
    scalars = [json.loads(line) for line in
               open(next(work.glob('*/vis_data/scalars.json')))]
    train, val = [s for s in scalars if 'loss' in s], [s for s in scalars if 'mFscore' in s]
    assert [s['iter'] for s in train] == [1, 2]
    assert all(0 < s['decode.loss_ce'] < 5 for s in train)
    assert len(val) == 1 and val[0]['step'] == 2
    for key in ('mFscore', 'mPrecision', 'mRecall', 'mIoU', 'aAcc', 'changed_F1',
                'changed_IoU'):
        assert 0 <= val[0][key] <= 100, key
    assert 'changed' in log and 'unchanged' in log  # per-class table (F1 of `changed`)

    # the trained backbone started from the CMID weights: 2 SGD steps moved it, a little. A
    # fresh initialisation would differ by about sqrt(2) x the weights' own norm; 2 steps at
    # lr 0.01 on random 48 px crops moved the tiny model's stem by 2-6 % of its norm (6.2 % seen
    # on a fresh machine), so 0.5 x norm separates "started from CMID" from "random" safely.
    import cmid_mm  # noqa: F401  (allow-lists Runner checkpoint globals for safe loading)
    ckpt = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=True)
    exported = torch.load(cmid_r18_backbone, weights_only=True)['state_dict']
    trained = ckpt['state_dict']
    convs = [k for k in exported if k.endswith('conv1.weight') or k.endswith('conv2.weight')]
    assert len(convs) == 1 + 2 * 8  # stem + 2 convs in each of the 8 BasicBlocks
    for k in convs:
        step = (trained[k] - exported[k]).norm()
        assert 0 < step < 0.5 * exported[k].norm(), k
    # the best checkpoint is chosen by the F1 of the `changed` class (CDIoUMetric)
    assert (work / 'best_changed_F1_iter_2.pth').is_file()

    # tools/test.py evaluates that checkpoint on the test split (num_workers=0 with the
    # config's persistent_workers=True must just work)
    test_cmd = [sys.executable, osp.join(REPO, 'tools', 'test.py'),
                osp.join(REPO, 'configs', 'changedet', 'siam-upernet_cmid-r50_40k_levir-cd-512x512.py'),
                str(work / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                '--cfg-options', *options[:5], f'test_dataloader.dataset.data_root={TINY}',
                'test_dataloader.num_workers=0', 'test_dataloader.dataset.pipeline.1.scale=(64,64)']
    proc = subprocess.run(test_cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "'mFscore':" in proc.stdout and "'changed_F1':" in proc.stdout
