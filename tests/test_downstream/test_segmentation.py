"""Segmentation configs (UperNet on CMID R50 / Swin-B / ViT-B), the no-clutter ISPRS datasets,
and a 2-iteration training run + validation on real SpaceNet building tiles."""
import copy
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import cmid_mm.downstream.seg  # noqa: F401  (registers the datasets and the safe-loading allow-list)
from cmid_mm.converters.export import export_checkpoint
from tests.test_downstream.test_weight_loading import CONFIGS as CMID_CONFIGS  # tiny CMIDs
from tests.test_downstream.test_weight_loading import fast_base_lookup  # noqa: F401 (autouse)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG = osp.join(REPO, 'configs', 'segmentation')
SEG_TINY = osp.join(REPO, 'tests', 'data', 'seg_tiny')
R50_POTSDAM = osp.join(SEG, 'upernet_cmid-r50_4xb4-50e_potsdam-noclutter-512x512.py')

# data part of the config name -> (dataset type, data root, number of classes)
DATASETS = {
    'potsdam-noclutter': ('PotsdamNoClutterDataset', 'data/potsdam', 5),
    'vaihingen-noclutter': ('VaihingenNoClutterDataset', 'data/vaihingen', 5),
    'potsdam': ('PotsdamDataset', 'data/potsdam', 6),
    'vaihingen': ('ISPRSDataset', 'data/vaihingen', 6),
    'loveda': ('LoveDADataset', 'data/loveDA', 7),
}
# backbone part -> (backbone type, default weights file, init_cfg prefix, head in_channels)
BACKBONES = {
    'cmid-r50': ('ResNet', 'work_dirs/cmid_r50_backbone.pth', 'backbone.',
                 [256, 512, 1024, 2048]),
    'cmid-swin-b-w12': ('SwinTransformer', 'work_dirs/cmid_swin-b_backbone.pth', None,
                        [128, 256, 512, 1024]),
    'cmid-vit-b16': ('VisionTransformer', 'work_dirs/cmid_vit-b16_backbone_mmseg-vit.pth',
                     None, [768] * 4),
}
CONFIGS = {f'upernet_{b}_4xb4-50e_{d}-512x512.py': (b, d) for b in BACKBONES for d in DATASETS}


def test_every_protocol_has_a_config_per_backbone():
    found = {osp.basename(p) for p in glob.glob(osp.join(SEG, '*.py'))}
    assert found == set(CONFIGS)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_recipe(name):
    bb, data = CONFIGS[name]
    dataset_type, data_root, num_classes = DATASETS[data]
    backbone_type, weights, prefix, in_channels = BACKBONES[bb]
    cfg = Config.fromfile(osp.join(SEG, name))
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['cmid_mm.downstream.seg'],
                                      allow_failed_imports=False)
    model = cfg.model
    # weights: the documented override path model.backbone.init_cfg.checkpoint
    assert model.backbone.type == backbone_type
    assert model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=weights, **({'prefix': prefix} if prefix else {}))
    assert cfg.checkpoint == weights
    assert model.pretrained is None
    # UperNet on all four stages + FCN auxiliary head on stage 3 (index 2; ViT: the 4th level)
    assert (model.decode_head.type, model.auxiliary_head.type) == ('UPerHead', 'FCNHead')
    assert model.decode_head.in_channels == in_channels
    assert model.auxiliary_head.in_channels == in_channels[2]
    assert model.decode_head.num_classes == model.auxiliary_head.num_classes == num_classes
    assert model.data_preprocessor.size == (512, 512)
    assert model.data_preprocessor.mean == [123.675, 116.28, 103.53]  # ImageNet, as the reference
    # data: 512x512 crops, epoch-based sampling, the protocol's dataset on every split
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert (loader.dataset.type, loader.dataset.data_root) == (dataset_type, data_root)
    assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    assert cfg.train_dataloader.batch_size == 4  # x 4 GPUs = 16 images per step
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert crop[0].crop_size == (512, 512)
    assert cfg.val_evaluator.iou_metrics == ['mIoU']
    # schedule: 50 epochs (method.md §8)
    assert (cfg.train_cfg.type, cfg.train_cfg.max_epochs) == ('EpochBasedTrainLoop', 50)
    opt = cfg.optim_wrapper.optimizer
    if bb == 'cmid-r50':
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.01, 0.9, 1e-4)
        assert model.backbone.depth == 50
    else:
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 6e-5, 0.01)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys['norm'] == dict(decay_mult=0.)
        assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'PolyLR']
        assert cfg.param_scheduler[1].end == 50
    if bb == 'cmid-swin-b-w12':
        b = model.backbone
        assert (b.embed_dims, b.depths, b.num_heads) == (128, [2, 2, 18, 2], [4, 8, 16, 32])
        assert (b.window_size, b.drop_path_rate) == (12, 0.3)
    if bb == 'cmid-vit-b16':
        b = model.backbone
        assert (b.embed_dims, b.num_layers, b.patch_size, b.img_size) == (768, 12, 16,
                                                                          (512, 512))
        assert b.patch_bias is True and b.final_norm is True
        assert model.neck.type == 'MultiLevelNeck'


@pytest.mark.parametrize('bb', sorted(BACKBONES))
def test_models_build_with_the_stated_classes(bb):
    """Each backbone's model builds (no weights) with heads for the protocol's classes."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(SEG, f'upernet_{bb}_4xb4-50e_potsdam-noclutter-512x512.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    init_default_scope('mmseg')
    model = MODELS.build(model_cfg)
    assert type(model.backbone).__name__ == BACKBONES[bb][0]
    assert model.decode_head.conv_seg.out_channels == 5
    assert model.auxiliary_head.conv_seg.out_channels == 5
    params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    # ResNet-50 without fc; Swin-B with 4 output norms; ViT-B/16 with a 32x32 + 1 position
    # embedding for 512 px (85.8 M at 224 px)
    expected = {'cmid-r50': 23.51, 'cmid-swin-b-w12': 86.88, 'cmid-vit-b16': 86.43}[bb]
    assert abs(params - expected) < 0.01, params


# ------------------------------------------------------------------- no-clutter datasets
def _one_label_dataset(root, dataset_type, **kwargs):
    """A dataset over one 2x7 label PNG holding every converter value 0..6 per row."""
    for sub in ('img_dir', 'ann_dir'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    Image.fromarray(np.zeros((2, 7, 3), np.uint8)).save(osp.join(root, 'img_dir', 'a.png'))
    label = np.tile(np.arange(7, dtype=np.uint8), (2, 1))
    Image.fromarray(label).save(osp.join(root, 'ann_dir', 'a.png'))
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS as SEG_DATASETS
    return SEG_DATASETS.build(dict(
        type=dataset_type, data_root=str(root),
        data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'),
        pipeline=[dict(type='LoadAnnotations')], **kwargs))


@pytest.mark.parametrize('dataset_type, stock', [
    ('PotsdamNoClutterDataset', 'PotsdamDataset'),
    ('VaihingenNoClutterDataset', 'ISPRSDataset'),
])
def test_noclutter_dataset_ignores_clutter(tmp_path, dataset_type, stock):
    # converter values: 0 boundary, 1 impervious, 2 building, 3 low veg., 4 tree, 5 car,
    # 6 clutter
    ds = _one_label_dataset(tmp_path / 'a', dataset_type)
    assert ds.metainfo['classes'] == ('impervious_surface', 'building', 'low_vegetation',
                                      'tree', 'car')
    assert len(ds.metainfo['palette']) == 5
    assert ds[0]['gt_seg_map'][0].tolist() == [255, 0, 1, 2, 3, 4, 255]
    stock_ds = _one_label_dataset(tmp_path / 'b', stock)
    assert stock_ds[0]['gt_seg_map'][0].tolist() == [255, 0, 1, 2, 3, 4, 5]
    # a subset of the five, reordered, through mmseg's own metainfo mechanism
    sub = _one_label_dataset(tmp_path / 'c', dataset_type,
                             metainfo=dict(classes=('car', 'building')))
    assert sub[0]['gt_seg_map'][0].tolist() == [255, 255, 1, 255, 255, 0, 255]
    with pytest.raises(ValueError, match=r"\['clutter'\] are not among"):
        _one_label_dataset(tmp_path / 'd', dataset_type,
                           metainfo=dict(classes=('building', 'clutter')))


def test_iou_metric_counts_no_clutter_pixel(tmp_path):
    """Hand-computed: a prediction wrong only on the clutter pixel scores mIoU 100 with the
    paper's protocol; with the stock 6 classes impervious IoU drops to 1/2 and clutter to 0:
    (0.5 + 1 + 1 + 1 + 1 + 0) / 6 = 75 %."""
    from mmengine.structures import PixelData
    from mmseg.evaluation import IoUMetric
    from mmseg.structures import SegDataSample
    results = {}
    for name, dataset_type in (('paper', 'PotsdamNoClutterDataset'),
                               ('stock', 'PotsdamDataset')):
        ds = _one_label_dataset(tmp_path / name, dataset_type)
        gt = torch.from_numpy(ds[0]['gt_seg_map'][:1].astype(np.int64))  # (1, 7)
        pred = gt.clone()
        pred[0, 0] = 2  # boundary pixel (ignored in both)
        pred[0, 6] = 0  # clutter pixel predicted as impervious
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=gt[None])
        sample.pred_sem_seg = PixelData(data=pred[None])
        metric = IoUMetric(iou_metrics=['mIoU'])
        metric.dataset_meta = ds.metainfo
        metric.process([], [sample.to_dict()])
        results[name] = metric.compute_metrics(metric.results)['mIoU']
    assert results == {'paper': 100.0, 'stock': 75.0}


# ------------------------------------------------------------------ training on seg_tiny
def _tiny_config(path):
    """The R50 Potsdam config shrunk to ResNet-18 / 64 px crops on the generic seg_tiny."""
    dataset = dict(type='BaseSegDataset', data_root=SEG_TINY, img_suffix='.png',
                   seg_map_suffix='.png', reduce_zero_label=False,
                   metainfo=dict(classes=('background', 'building'),
                                 palette=[[0, 0, 0], [255, 0, 0]]))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(128, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    loader = dict(num_workers=0, persistent_workers=False)
    fields = dict(
        _base_=[R50_POTSDAM],
        model=dict(
            data_preprocessor=dict(size=(64, 64)),
            backbone=dict(depth=18),
            decode_head=dict(in_channels=[64, 128, 256, 512], channels=16, num_classes=2),
            auxiliary_head=dict(in_channels=256, channels=16, num_classes=2)),
        train_dataloader=dict(loader, batch_size=2, dataset=dict(
            dataset, pipeline=train_pipeline,
            data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'))),
        val_dataloader=dict(loader, dataset=dict(
            dataset, pipeline=test_pipeline,
            data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'))),
        train_cfg=dict(max_epochs=1, val_interval=1),
        default_hooks=dict(logger=dict(interval=1)))
    fields['test_dataloader'] = fields['val_dataloader']
    with open(path, 'w') as f:
        f.write(''.join(f'{k} = {v!r}\n' for k, v in fields.items()))


def test_train_two_iterations_and_validate_on_real_tiles(tmp_path):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    state = MODELS.build(copy.deepcopy(CMID_CONFIGS['resnet'])).state_dict()
    weights = str(tmp_path / 'cmid_r18_backbone.pth')
    torch.save(export_checkpoint({'state_dict': state, 'meta': {}}), weights)
    config = str(tmp_path / 'tiny.py')
    _tiny_config(config)
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', str(work),
         '--cfg-options', f'model.backbone.init_cfg.checkpoint={weights}'],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    # the CMID weights went in through the config's init_cfg, completely
    assert f'load backbone. in model from: {weights}' in log
    assert 'missing keys in source state_dict' not in log
    assert 'unexpected key in source state_dict' not in log
    # 4 training tiles / batch 2 = 2 iterations, then validation on the 2 held-out tiles
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    records = [json.loads(line) for line in open(scalars[0])]
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == [1, 2]
    assert all(np.isfinite(r['loss']) and 'aux.loss_ce' in r for r in train)
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1 and 0 <= val[0]['mIoU'] <= 100
    assert re.search(r'\|\s+building\s+\|', log) and re.search(r'\|\s+background\s+\|', log)
    assert (work / 'epoch_1.pth').is_file()
