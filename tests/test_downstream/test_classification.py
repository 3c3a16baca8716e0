"""Scene-classification configs: recipe values, CMID weights loading, a 2-iteration run."""
import copy
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import cmid_mm  # noqa: F401  (registers the CMID modules and the safe-loading allow-list)
from cmid_mm.converters.export import export_checkpoint
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CFG_DIR = osp.join(REPO, 'configs', 'classification')
DATA = osp.join(REPO, 'tests', 'data', 'scene_tiny')
_split_tool = load_tool('tools/dataset_converters/split_folder_dataset.py')
split_main, split_folder_dataset = _split_tool.main, _split_tool.split_folder_dataset

# config -> (backbone type, number of classes, data root)
FINETUNE = {
    'cmid_r50_ft_ucm.py': ('ResNet', 21, 'data/UCMerced_LandUse'),
    'cmid_r50_ft_aid.py': ('ResNet', 30, 'data/AID'),
    'cmid_r50_ft_nwpu.py': ('ResNet', 45, 'data/NWPU-RESISC45'),
    'cmid_swin-b_ft_ucm.py': ('SwinTransformer', 21, 'data/UCMerced_LandUse'),
    'cmid_swin-b_ft_aid.py': ('SwinTransformer', 30, 'data/AID'),
    'cmid_swin-b_ft_nwpu.py': ('SwinTransformer', 45, 'data/NWPU-RESISC45'),
}


def _load(name):
    return Config.fromfile(osp.join(CFG_DIR, name))


def _types(pipeline):
    return [t['type'] for t in pipeline]


def _common(cfg, num_classes, data_root):
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['cmid_mm'], allow_failed_imports=False)
    init = cfg.model.backbone.init_cfg
    assert (init.type, init.prefix) == ('Pretrained', 'backbone.')
    assert init.checkpoint == cfg.checkpoint
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == num_classes
    for loader, ann in ((cfg.train_dataloader, 'meta/train.txt'),
                        (cfg.val_dataloader, 'meta/val.txt')):
        assert loader.dataset.type == 'CustomDataset'
        assert (loader.dataset.data_root, loader.dataset.ann_file) == (data_root, ann)
    # ImageNet statistics downstream (method.md §2.3), RGB
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.to_rgb is True
    assert _types(cfg.val_dataloader.dataset.pipeline) == [
        'LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
    assert cfg.val_dataloader.dataset.pipeline[2].crop_size == 224


@pytest.mark.parametrize('name', sorted(FINETUNE))
def test_finetune_config_has_the_paper_recipe(name):
    backbone, num_classes, data_root = FINETUNE[name]
    cfg = _load(name)
    _common(cfg, num_classes, data_root)
    model = cfg.model
    assert model.backbone.type == backbone
    if backbone == 'ResNet':
        assert model.backbone.depth == 50 and model.head.in_channels == 2048
    else:
        assert model.backbone.arch == 'base' and model.backbone.img_size == 224
        assert model.backbone.drop_path_rate == 0.5
        assert model.head.in_channels == 1024
    assert model.head.loss.type == 'LabelSmoothLoss'
    assert model.head.loss.label_smooth_val == 0.1
    assert [(a.type, a.alpha) for a in model.train_cfg.augments] == [('Mixup', 0.8),
                                                                     ('CutMix', 1.0)]
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('Adan', 3.125e-3, 0.02)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 5)
    assert (cosine.type, cosine.begin, cosine.end) == ('CosineAnnealingLR', 5, 200)
    assert cfg.train_cfg.max_epochs == 200

    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert list(pipeline) == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
                              'RandAugment', 'RandomErasing', 'PackInputs']
    assert pipeline['RandomResizedCrop']['scale'] == 224
    ra = pipeline['RandAugment']  # rand-m9-mstd0.5-inc1
    assert (ra['policies'], ra['num_policies'], ra['magnitude_level'], ra['magnitude_std'],
            ra['total_level']) == ('timm_increasing', 2, 9, 0.5, 10)
    assert pipeline['RandomErasing']['erase_prob'] == 0.25


def test_linear_probe_config_freezes_the_backbone():
    cfg = _load('cmid_r50_linear_ucm.py')
    _common(cfg, 21, 'data/UCMerced_LandUse')
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.frozen_stages, backbone.norm_eval) == (
        'ResNet', 50, 4, True)
    assert (cfg.model.head.type, cfg.model.head.loss.type) == ('LinearClsHead',
                                                               'CrossEntropyLoss')
    assert not cfg.model.get('train_cfg')  # no Mixup / CutMix
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 7.5, 0.9, 0.)
    assert cfg.param_scheduler[0].milestones == [60, 80] and cfg.train_cfg.max_epochs == 100
    assert _types(cfg.train_dataloader.dataset.pipeline) == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PackInputs']

    # Built: only the head is trainable, and BN stays in eval mode in train().
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg.model.backbone.depth = 18
    cfg.model.head.in_channels = 512
    model = MODELS.build(cfg.model)
    model.train()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ['head.fc.weight', 'head.fc.bias']
    assert not any(m.training for m in model.backbone.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))


def test_split_folder_dataset_is_stratified_and_seeded(tmp_path):
    root = osp.join(DATA, 'train')
    train, val, classes = split_folder_dataset(root, train_ratio=0.8, seed=0)
    assert classes == ['building', 'no_building']
    assert len(train) == 16 and len(val) == 4
    assert [sum(lab == c for _, lab in val) for c in (0, 1)] == [2, 2]
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert all(p.startswith(classes[lab] + '/') for p, lab in train + val)
    assert split_folder_dataset(root, 0.8, 0) == (train, val, classes)
    assert split_folder_dataset(root, 0.8, 1)[1] != val

    split_main([root, '--out-dir', str(tmp_path), '--train-ratio', '0.8', '--seed', '0'])
    assert (tmp_path / 'classes.txt').read_text() == 'building\nno_building\n'
    lines = (tmp_path / 'val.txt').read_text().splitlines()
    assert lines == [f'{p} {lab}' for p, lab in val]
    # the files are what mmpretrain's CustomDataset reads
    from mmpretrain.datasets import CustomDataset
    ds = CustomDataset(data_root=DATA, data_prefix='train', ann_file=str(tmp_path / 'train.txt'))
    assert len(ds) == 16 and sorted(set(ds.get_gt_labels().tolist())) == [0, 1]
    assert osp.isfile(ds.get_data_info(0)['img_path'])
    with pytest.raises(ValueError, match='inside'):
        split_main([root, '--out-dir', osp.join(root, 'meta')])


@pytest.fixture(scope='module')
def cmid_r18(tmp_path_factory):
    """A real CMID ResNet-18 training checkpoint (demo config, random init) and its export."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'))
    state = MODELS.build(cfg.model).state_dict()
    folder = tmp_path_factory.mktemp('cmid')
    ckpt = {'state_dict': state, 'meta': {}}
    torch.save(ckpt, folder / 'cmid_r18.pth')
    exported = export_checkpoint(ckpt)['state_dict']
    return str(folder / 'cmid_r18.pth'), exported


def test_swin_config_takes_cmid_swin_weights(tmp_path):
    """A (tiny) CMID Swin export loads completely into the Swin-B fine-tuning config's model,
    whose classifier-level init (TruncNormal / LayerNorm) must not overwrite it."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    student = MODELS.build(dict(type='CMIDSwinTransformer', arch=arch, img_size=64,
                                window_size=2, out_indices=(3, )))
    exported = export_checkpoint({'state_dict': {'backbone.' + k: v for k, v in
                                                 student.state_dict().items()}})['state_dict']
    torch.save({'state_dict': exported}, tmp_path / 'swin.pth')
    cfg = _load('cmid_swin-b_ft_ucm.py')
    cfg.model.backbone.update(arch=arch, img_size=64, window_size=2,
                              init_cfg=dict(cfg.model.backbone.init_cfg,
                                            checkpoint=str(tmp_path / 'swin.pth')))
    cfg.model.head.in_channels = 128
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.init_weights()
    loaded = model.backbone.state_dict()
    same = [k for k, v in exported.items() if torch.equal(loaded[k[len('backbone.'):]], v)]
    # patch embed 4 + 4 blocks x 13 + 3 patch mergings x 3 + norm3 2 (no mask token, no
    # relative_position_index buffers: those are rebuilt by the model)
    assert len(exported) == 67
    assert len(same) == 67
    assert model.head.fc.weight.shape == (21, 128)


# Shrink the ResNet-50 UC Merced fine-tuning config to ResNet-18 on the tiny real data at 64 px.
OVERRIDES = {
    'model.backbone.depth': 18,
    'model.head.in_channels': 512,
    'model.head.num_classes': 2,
    'data_preprocessor.num_classes': 2,
    'train_dataloader.dataset.data_root': DATA,
    'train_dataloader.dataset.data_prefix': 'train',
    'train_dataloader.dataset.ann_file': '',  # scan the class folders
    'train_dataloader.dataset.pipeline.1.scale': 64,
    'train_dataloader.batch_size': 10,  # 20 images: 2 iterations per epoch
    'train_dataloader.num_workers': 0,
    'val_dataloader.dataset.data_root': DATA,
    'val_dataloader.dataset.data_prefix': 'val',
    'val_dataloader.dataset.ann_file': '',
    'val_dataloader.dataset.pipeline.1.scale': 73,
    'val_dataloader.dataset.pipeline.2.crop_size': 64,
    'val_dataloader.batch_size': 20,
    'val_dataloader.num_workers': 0,
    'val_evaluator.topk': (1, ),
    'train_cfg.max_epochs': 1,
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.save_best': None,
    'default_hooks.checkpoint.save_optimizer': False,
    'randomness.seed': 0,
}


def _cli(value):
    if isinstance(value, tuple):
        return '(' + ','.join(map(str, value)) + ',)'
    return str(value)


def test_r50_finetune_config_builds_with_all_cmid_backbone_weights(cmid_r18):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = _load('cmid_r50_ft_ucm.py')
    cfg.merge_from_dict({**OVERRIDES, 'model.backbone.init_cfg.checkpoint': cmid_r18[0]})
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    same = [k for k, v in cmid_r18[1].items() if torch.equal(loaded[k[len('backbone.'):]], v)]
    assert len(loaded) == len(same) == 120  # every ResNet-18 entry, none left at init


def test_r50_finetune_runs_two_iterations_from_cmid_weights(cmid_r18, tmp_path):
    ckpt_path, exported = cmid_r18
    work_dir = tmp_path / 'work'
    options = {**OVERRIDES, 'model.backbone.init_cfg.checkpoint': ckpt_path}
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
           osp.join(CFG_DIR, 'cmid_r50_ft_ucm.py'), '--work-dir', str(work_dir),
           '--cfg-options'] + [f'{k}={_cli(v)}' for k, v in options.items()]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Epoch(train) [1][2/2]' in log
    top1 = float(re.search(r'Epoch\(val\) \[1\]\[1/1\]\s+accuracy/top1: ([\d.]+)', log).group(1))
    assert 0 <= top1 <= 100
    # From the CMID training checkpoint only the mask token is unused; nothing is missing.
    assert 'unexpected key in source state_dict: mask_token\n' in log
    assert 'missing keys in source state_dict' not in log

    # The fine-tuned backbone started from the CMID weights: after 2 Adan steps at warm-up lr
    # (<= 3.5e-4) every learned tensor is within 2e-3 of them, and every one has moved.
    tuned = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')['state_dict']
    learned = [k for k in exported if not k.endswith(('running_mean', 'running_var',
                                                      'num_batches_tracked'))]
    assert len(learned) == 60  # ResNet-18 weights and biases
    deltas = {k: (tuned[k] - exported[k]).abs().max().item() for k in learned}
    assert max(deltas.values()) < 2e-3
    assert min(deltas.values()) > 0
    assert tuned['head.fc.weight'].shape == (2, 512)
