"""Detection configs (Faster R-CNN + FPN on CMID R50 / Swin-B, DIOR), the DIOR dataset, and a
2-iteration training run + validation on real NEON tree boxes in DIOR's layout."""
import copy
import glob
import json
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import cmid_mm.downstream.det  # noqa: F401  (registers DIORDataset and the safe-loading allow-list)
from cmid_mm.downstream.det import DIOR_CLASSES
from cmid_mm.converters.export import export_checkpoint
from tests.test_downstream.test_weight_loading import CONFIGS as CMID_CONFIGS  # tiny CMIDs
from tests.test_downstream.test_weight_loading import fast_base_lookup  # noqa: F401 (autouse)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DET = osp.join(REPO, 'configs', 'detection')
DET_TINY = osp.join(REPO, 'tests', 'data', 'det_tiny')
ANN_SUBDIR = 'Annotations/Horizontal Bounding Boxes'
R50 = osp.join(DET, 'faster-rcnn_cmid-r50_fpn_1x_dior.py')
SWIN = osp.join(DET, 'faster-rcnn_cmid-swin-b-w7_fpn_1x_dior.py')
# split -> boxes per tile in det_tiny (tests/data/det_tiny/README.md)
TINY_BOXES = {'train': [19, 24], 'val': [17], 'test': [28]}


@pytest.mark.parametrize('config', [R50, SWIN], ids=['r50', 'swin-b'])
def test_config_recipe(config):
    cfg = Config.fromfile(config)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['cmid_mm.downstream.det'],
                                      allow_failed_imports=False)
    model = cfg.model
    assert model.type == 'FasterRCNN' and model.neck.type == 'FPN'
    assert model.data_preprocessor.mean == [123.675, 116.28, 103.53]  # ImageNet, as the reference
    roi = model.roi_head.bbox_roi_extractor.roi_layer
    assert roi.type == 'RoIAlign'  # RoIPool has no CPU kernel in mmcv
    assert model.roi_head.bbox_head.num_classes == 20
    backbone = model.backbone
    if config == R50:
        assert (backbone.type, backbone.depth) == ('ResNet', 50)
        assert backbone.init_cfg == dict(type='Pretrained', prefix='backbone.',
                                         checkpoint='work_dirs/cmid_r50_backbone.pth')
        assert model.neck.in_channels == [256, 512, 1024, 2048]
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.02, 0.9, 1e-4)
    else:
        assert backbone.type == 'SwinTransformer'
        assert backbone.convert_weights is False  # CMID export has mmpretrain names
        assert backbone.init_cfg == dict(type='Pretrained',
                                         checkpoint='work_dirs/cmid_swin-b_backbone.pth')
        assert (backbone.embed_dims, backbone.depths, backbone.num_heads) == (
            128, [2, 2, 18, 2], [4, 8, 16, 32])
        assert (backbone.window_size, backbone.drop_path_rate) == (7, 0.3)
        assert backbone.out_indices == (0, 1, 2, 3)
        assert model.neck.in_channels == [128, 256, 512, 1024]
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-4, 0.05)
    # 12 epochs, LR steps at 8 and 11
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.param_scheduler[1].milestones == [8, 11]
    # DIOR: train on train + val, evaluate on test; 800x800
    splits = cfg.train_dataloader.dataset.datasets
    assert [d.ann_file for d in splits] == ['ImageSets/Main/train.txt', 'ImageSets/Main/val.txt']
    for d in splits:
        assert (d.type, d.data_root, d.img_subdir, d.ann_subdir) == (
            'DIORDataset', 'data/DIOR/', 'JPEGImages-trainval', ANN_SUBDIR)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        d = loader.dataset
        assert (d.type, d.ann_file, d.img_subdir, d.test_mode) == (
            'DIORDataset', 'ImageSets/Main/test.txt', 'JPEGImages-test', True)
    assert [t.scale for t in splits[0].pipeline if t.type == 'Resize'] == [(800, 800)]
    assert (cfg.val_evaluator.type, cfg.val_evaluator.metric) == ('VOCMetric', 'mAP')


@pytest.mark.parametrize('config', [R50, SWIN], ids=['r50', 'swin-b'])
def test_models_build(config):
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(Config.fromfile(config).model)
    model_cfg.backbone.init_cfg = None
    init_default_scope('mmdet')
    model = MODELS.build(model_cfg)
    assert type(model.roi_head.bbox_roi_extractor.roi_layers[0]).__name__ == 'RoIAlign'
    assert model.roi_head.bbox_head.fc_cls.out_features == 21  # 20 classes + background
    params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    # ResNet-50 without fc; Swin-B with window-7 bias tables and 4 output norms
    assert abs(params - (23.51 if config == R50 else 86.75)) < 0.01, params


# --------------------------------------------------------------------------- DIORDataset
def _dior(split, img_subdir=None, **kwargs):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    if img_subdir is None:
        img_subdir = 'JPEGImages-test' if split == 'test' else 'JPEGImages-trainval'
    return DATASETS.build(dict(
        type='DIORDataset', data_root=DET_TINY, ann_file=f'ImageSets/Main/{split}.txt',
        img_subdir=img_subdir, test_mode=split == 'test', **kwargs))


def test_dior_metainfo_and_skipped_classes():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = _dior('train')
    finally:
        logger.removeHandler(handler)
    assert ds.metainfo['classes'] == DIOR_CLASSES and len(DIOR_CLASSES) == 20
    assert len(ds.metainfo['palette']) == 20
    assert [len(ds.get_data_info(i)['instances']) for i in range(len(ds))] == [0, 0]
    # 19 + 24 tree boxes: not a DIOR class, reported once with the split file
    assert [r.getMessage() for r in records] == [
        f'DIORDataset ({DET_TINY}/ImageSets/Main/train.txt): skipped objects whose class is '
        "not in metainfo classes: {'tree': 43}"]


@pytest.mark.parametrize('split', sorted(TINY_BOXES))
def test_dior_reads_the_tiny_split(split):
    ds = _dior(split, metainfo=dict(classes=('tree', )))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [len(i['instances']) for i in infos] == TINY_BOXES[split]
    assert all((i['width'], i['height']) == (256, 256) and osp.isfile(i['img_path'])
               for i in infos)
    # VOC convention: 1-based inclusive in the XML, minus one in mmdet
    import xml.etree.ElementTree as ET
    first = ET.parse(infos[0]['xml_path']).find('object/bndbox')
    xml_box = [int(first.find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
    assert infos[0]['instances'][0]['bbox'] == [v - 1 for v in xml_box]
    assert all(b['bbox_label'] == 0 and b['ignore_flag'] == 0
               for i in infos for b in i['instances'])


def test_dior_matches_class_names_case_insensitively(tmp_path):
    root = tmp_path / 'DIOR'
    shutil.copytree(DET_TINY, root)
    xml = root / ANN_SUBDIR / 'neon528_y0000_x0768.xml'
    text = xml.read_text()
    names = ['AIRPLANE', 'expressway-service-area', 'Expressway-toll-station', 'WindMill']
    for name in names:
        text = text.replace('<name>tree</name>', f'<name>{name}</name>', 1)
    xml.write_text(text)
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(type='DIORDataset', data_root=str(root),
                             ann_file='ImageSets/Main/train.txt'))
    labels = [b['bbox_label'] for b in ds.get_data_info(0)['instances']]
    assert labels == [0, 7, 8, 19]  # airplane, Expressway-Service-area, -toll-station, windmill


def test_dior_layout_errors_name_the_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'split list .*nope\.txt.* does not exist'):
        _dior('nope')
    with pytest.raises(FileNotFoundError, match=r'DIOR image .*JPEGImages-test.*neon528'):
        _dior('train', img_subdir='JPEGImages-test')
    with pytest.raises(FileNotFoundError, match=r'DIOR annotation .*Annotations/neon528'):
        _dior('train', ann_subdir='Annotations')  # the first DIOR release's folder


# --------------------------------------------------------------------- training on det_tiny
def _tiny_config(path):
    """The R50 DIOR config shrunk to ResNet-18 / 128 px on det_tiny's tree boxes."""
    resize = dict(type='Resize', scale=(128, 128), keep_ratio=True)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True), resize,
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'), resize,
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
    ]
    common = dict(type='DIORDataset', data_root=DET_TINY, metainfo=dict(classes=('tree', )))
    train = [dict(common, ann_file=f'ImageSets/Main/{s}.txt', img_subdir='JPEGImages-trainval',
                  filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline)
             for s in ('train', 'val')]
    loader = dict(num_workers=0, persistent_workers=False)
    fields = dict(
        _base_=[R50],
        model=dict(
            backbone=dict(depth=18),
            neck=dict(in_channels=[64, 128, 256, 512]),
            roi_head=dict(bbox_head=dict(num_classes=1))),
        train_dataloader=dict(loader, batch_size=2, dataset=dict(datasets=train)),
        val_dataloader=dict(loader, dataset=dict(
            common, ann_file='ImageSets/Main/test.txt', img_subdir='JPEGImages-test',
            test_mode=True, pipeline=test_pipeline)),
        train_cfg=dict(max_epochs=1, val_interval=1),
        default_hooks=dict(logger=dict(interval=1)))
    fields['test_dataloader'] = fields['val_dataloader']
    with open(path, 'w') as f:
        f.write(''.join(f'{k} = {v!r}\n' for k, v in fields.items()))


def test_train_two_iterations_and_validate_on_real_tree_boxes(tmp_path):
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
    assert f'load backbone. in model from: {weights}' in log
    assert 'missing keys in source state_dict' not in log
    assert 'unexpected key in source state_dict' not in log
    # 3 train + val tiles / batch 2 = 2 iterations, then VOC mAP on the held-out scene's tile
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    records = [json.loads(line) for line in open(scalars[0])]
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == [1, 2]
    assert all(np.isfinite(r['loss']) and {'loss_rpn_cls', 'loss_bbox'} <= set(r)
               for r in train)
    val = [r for r in records if 'pascal_voc/mAP' in r]
    assert len(val) == 1 and 0 <= val[0]['pascal_voc/mAP'] <= 1
    assert (work / 'epoch_1.pth').is_file()
