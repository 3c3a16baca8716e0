"""open-cd's own tools/train.py and tools/test.py (run from the open-cd checkout, which stays
read-only; work dirs in tmp) on configs/opencd with CMID weights, on the tiny LEVIR-format set
of real imagery (tests/data/levir_cd_tiny: SpaceNet Atlanta tile, semi-synthetic change).

ResNet-18 / tiny-Swin depths of the R50 / Swin-B configs keep it fast; everything else (model
types, loaders, hook, metric, runner, visualiser) is the config's."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from tests.test_opencd.opencd_utils import REPO, TINY

OPENCD_CONFIGS = osp.join(REPO, 'configs', 'opencd')

LOADERS = [
    f'train_dataloader.dataset.data_root={TINY}',
    f'val_dataloader.dataset.data_root={TINY}',
    f'test_dataloader.dataset.data_root={TINY}',
    'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
    'val_dataloader.dataset.pipeline.1.scale=(64,64)',  # test resize 1024 -> the 64 px tiles
    'test_dataloader.dataset.pipeline.1.scale=(64,64)',
]
TWO_ITERS = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
R18_CHANGER = [  # the ResNet-50 ChangerEx config at ResNet-18 depth (the tiny CMID export)
    'model.backbone.depth=18', 'model.decode_head.in_channels=[64,128,256,512]',
    'model.decode_head.channels=32',
    'train_dataloader.dataset.pipeline.3.crop_size=(48,48)',  # 512 px crops -> 48 px
]
TINY_SWIN_CHANGER = [  # the Swin-B ChangerEx config at the tiny CMID Swin's size
    'model.backbone.embed_dims=16', 'model.backbone.depths=[1,1,1,1]',
    'model.backbone.num_heads=[1,1,2,2]', 'model.decode_head.in_channels=[16,32,64,128]',
    'model.decode_head.channels=32',
    'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
]


def run_tool(root, env, tool, config, args, cwd):
    cmd = [sys.executable, osp.join(root, 'tools', tool), config, *args]
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def hook_counts(log):
    """The PretrainedLoadCheckHook summary of the backbone: {'loaded': n, ...}."""
    m = re.search(r'pretrained weights of backbone \((\w+)\).*\n\s+loaded (\d+) \| resized '
                  r'(\d+) \| new by design (\d+) \| missing (\d+) \| not loaded (\d+) \| '
                  r'unexpected \(unused in the file\) (\d+)\s+->\s+(\w+)', log)
    assert m, 'no PretrainedLoadCheckHook summary in the log'
    keys = ('type', 'loaded', 'resized', 'new_by_design', 'missing', 'not_loaded', 'unexpected',
            'verdict')
    return {k: (v if k in ('type', 'verdict') else int(v)) for k, v in zip(keys, m.groups())}


def scalars(work):
    return [json.loads(line) for line in open(next(work.glob('*/vis_data/scalars.json')))]


@pytest.fixture(scope='module')
def changer_run(opencd_root, cmid_r18_export, tmp_path_factory):
    """open-cd's tools/train.py: ChangerEx (IA_ResNet) from the tiny CMID ResNet-18, 2 iters."""
    tmp = tmp_path_factory.mktemp('changer')
    env = dict(os.environ, OPENCD_ROOT=opencd_root, OMP_NUM_THREADS='1')
    work = tmp / 'work'
    options = [*R18_CHANGER, *LOADERS,
               f'model.backbone.init_cfg.checkpoint={cmid_r18_export}']
    rc, log = run_tool(opencd_root, env, 'train.py',
                       osp.join(OPENCD_CONFIGS, 'cmid_r50_changer-ex_levir-cd.py'),
                       ['--work-dir', str(work), '--cfg-options', *options, *TWO_ITERS], tmp)
    return dict(rc=rc, log=log, work=work, env=env, tmp=tmp, options=options)


def test_open_cd_train_runs_changer_from_cmid_weights(changer_run, cmid_r18_export):
    log, work = changer_run['log'], changer_run['work']
    assert changer_run['rc'] == 0, log[-3000:]
    # open-cd's train.py built the runner from its registry: SafeRunner resolved (a KeyError
    # otherwise) because the config's custom_imports registered it
    assert "runner_type = 'SafeRunner'" in log
    # the hook compared every backbone tensor with the export by value before iteration 1
    counts = hook_counts(log)
    exported = torch.load(cmid_r18_export, weights_only=True)['state_dict']
    assert counts == dict(type='IA_ResNet', loaded=len(exported), resized=0, new_by_design=0,
                          missing=0, not_loaded=0, unexpected=0, verdict='OK')
    assert len(exported) == 120  # ResNet-18: torchvision's 122 entries minus fc

    values = scalars(work)
    train = [s for s in values if 'loss' in s]
    val = [s for s in values if 'changed_F1' in s]
    assert [s['iter'] for s in train] == [1, 2]
    assert len(val) == 1 and val[0]['step'] == 2
    for key in ('changed_F1', 'changed_IoU', 'mFscore', 'mIoU'):
        assert 0 <= val[0][key] <= 100, key
    # open-cd's runtime: its visualiser and visualisation hook, the best checkpoint by the
    # `changed` class's F1
    assert "type='CDLocalVisualizer'" in log and 'CDVisualizationHook' in log
    assert (work / 'best_changed_F1_iter_2.pth').is_file()


def test_trained_changer_holds_the_cmid_tensors(changer_run, cmid_r18_export):
    """Every CMID tensor is in the trained model under its name; the 60 parameters moved by
    at most two AdamW steps (warm-up lr 5e-9, then 5e-6) from the export, while a fresh
    initialisation would be ~1e-1 away; the BN statistics moved by the momentum update."""
    assert changer_run['rc'] == 0, changer_run['log'][-3000:]
    import cmid_mm  # noqa: F401  (safe loading of Runner checkpoints)
    trained = torch.load(changer_run['work'] / 'iter_2.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    exported = torch.load(cmid_r18_export, weights_only=True)['state_dict']
    assert all(k in trained for k in exported)  # 120 of 120 names
    lrs = [s['lr'] for s in scalars(changer_run['work']) if 'loss' in s]
    assert len(lrs) == 2 and max(lrs) < 1e-5
    bound = 3 * sum(lrs)  # |AdamW step| <= lr * |m/sqrt(v)| (~1) + lr * wd * |w|
    params = [k for k in exported
              if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]
    assert len(params) == 60
    close = [k for k in params if (trained[k] - exported[k]).abs().max() <= bound]
    assert close == params
    convs = [k for k in params if k.endswith('conv1.weight') or k.endswith('conv2.weight')]
    assert len(convs) == 17  # stem + 2 per BasicBlock
    assert any((trained[k] != exported[k]).any() for k in convs)  # it did train
    assert all(exported[k].std() > 100 * bound for k in convs)  # a random init is far away


def test_open_cd_test_tool_evaluates_the_trained_checkpoint(changer_run, opencd_root):
    """open-cd's tools/test.py reads the Runner checkpoint only because the config imports
    cmid_mm (torch's safe loading otherwise refuses mmengine's HistoryBuffer)."""
    assert changer_run['rc'] == 0, changer_run['log'][-3000:]
    tmp = changer_run['tmp']
    rc, log = run_tool(opencd_root, changer_run['env'], 'test.py',
                       osp.join(OPENCD_CONFIGS, 'cmid_r50_changer-ex_levir-cd.py'),
                       [str(changer_run['work'] / 'iter_2.pth'), '--work-dir',
                        str(tmp / 'test'), '--cfg-options', *changer_run['options']], tmp)
    assert rc == 0, log[-3000:]
    assert 'UnpicklingError' not in log
    m = re.search(r'Iter\(test\) \[4/4\].*changed_F1: ([\d.]+)', log)  # the 4 test pairs
    assert m and 0 <= float(m.group(1)) <= 100


def test_open_cd_train_runs_swin_changer_from_cmid_weights(opencd_root, opencd_env,
                                                           cmid_swin_export, tmp_path):
    """IA_SwinTransformer in open-cd's DIEncoderDecoder, the tiny CMID Swin (window 2) in a
    window-7 model: mmseg's loader resizes the 4 bias tables; the 4 index buffers and the
    output norms norm0-2 (3 x weight, bias) are new by design; nothing is missing."""
    work = tmp_path / 'work'
    rc, log = run_tool(opencd_root, opencd_env, 'train.py',
                       osp.join(OPENCD_CONFIGS, 'cmid_swin-b_changer-ex_levir-cd.py'),
                       ['--work-dir', str(work), '--cfg-options', *TINY_SWIN_CHANGER, *LOADERS,
                        f'model.backbone.init_cfg.checkpoint={cmid_swin_export}', *TWO_ITERS],
                       tmp_path)
    assert rc == 0, log[-3000:]
    exported = torch.load(cmid_swin_export, weights_only=True)['state_dict']
    assert hook_counts(log) == dict(type='IA_SwinTransformer', loaded=len(exported) - 4,
                                    resized=4, new_by_design=4 + 6, missing=0, not_loaded=0,
                                    unexpected=0, verdict='OK')
    assert (work / 'best_changed_F1_iter_2.pth').is_file()


def test_our_mmseg_cd_config_runs_through_open_cd_with_all_of_open_cd_registered(
        opencd_root, opencd_env, cmid_r18_export, tmp_path):
    """configs/changedet (default_scope mmseg, cmid_mm.downstream.changedet's models) with every open-cd module
    imported (its SiamEncoderDecoder, LEVIR_CD_Dataset, ... registered beside ours), run by
    open-cd's tools/train.py: no clash, the mmseg-scope names resolve to cmid_mm's classes."""
    user_cfg = tmp_path / 'cfg.py'
    user_cfg.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'changedet', 'siam-upernet_cmid-r50_40k_levir-cd-512x512.py')!r}]\n"
        "custom_imports = dict(imports=['cmid_mm.downstream.changedet', 'opencd.models', 'opencd.datasets', "
        "'opencd.engine', 'opencd.evaluation', 'opencd.visualization'], "
        "allow_failed_imports=False)\n")
    options = ['model.backbone.depth=18', 'model.decode_head.in_channels=[128,256,512,1024]',
               'model.decode_head.channels=32', 'model.auxiliary_head.in_channels=512',
               'model.auxiliary_head.channels=16',
               f'model.backbone.init_cfg.checkpoint={cmid_r18_export}',
               'train_dataloader.dataset.pipeline.2.crop_size=(48,48)', *LOADERS]
    work = tmp_path / 'work'
    rc, log = run_tool(opencd_root, opencd_env, 'train.py', str(user_cfg),
                       ['--work-dir', str(work), '--cfg-options', *options, *TWO_ITERS],
                       tmp_path)
    assert rc == 0, log[-3000:]
    assert "runner_type = 'SafeRunner'" in log  # the changedet config's own setting
    assert hook_counts(log)['verdict'] == 'OK'
    val = [s for s in scalars(work) if 'changed_F1' in s]
    assert len(val) == 1 and val[0]['step'] == 2
    assert (work / 'best_changed_F1_iter_2.pth').is_file()
    # the model that ran is cmid_mm's (mmseg scope), not open-cd's class of the same name
    import cmid_mm  # noqa: F401
    meta = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=True)['meta']
    assert "default_scope = 'mmseg'" in meta['cfg']
    from cmid_mm.downstream.changedet import SiamEncoderDecoder
    from mmseg.registry import MODELS as MMSEG_MODELS
    from opencd.registry import MODELS as OPENCD_MODELS
    assert MMSEG_MODELS.get('SiamEncoderDecoder') is SiamEncoderDecoder
    assert OPENCD_MODELS.get('SiamEncoderDecoder') is not SiamEncoderDecoder
