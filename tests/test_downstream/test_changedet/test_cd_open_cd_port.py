"""An open-cd config ported by changing only its scope builds and runs with cmid_mm.

The config below is written the way open-cd writes its configs (``mmseg.``-prefixed mmseg
types next to open-cd's own names); the only change is ``default_scope='mmseg'``.
"""
import copy

import torch
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS, MODELS

from tests.test_downstream.test_changedet.cd_utils import TINY

norm_cfg = dict(type='BN', requires_grad=True)
OPEN_CD = dict(
    default_scope='mmseg',  # open-cd: 'opencd'
    model=dict(
        type='SiamEncoderDecoder',
        data_preprocessor=dict(
            type='DualInputSegDataPreProcessor',
            mean=[123.675, 116.28, 103.53] * 2,
            std=[58.395, 57.12, 57.375] * 2,
            bgr_to_rgb=True,
            size_divisor=32,
            pad_val=0,
            seg_pad_val=255,
            test_cfg=dict(size_divisor=32)),
        pretrained=None,
        backbone=dict(
            type='mmseg.ResNetV1c', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2), norm_cfg=norm_cfg, norm_eval=False,
            style='pytorch', contract_dilation=True),
        neck=dict(type='FeatureFusionNeck', policy='abs_diff'),
        decode_head=dict(
            type='mmseg.UPerHead', in_channels=[v * 1 for v in [64, 128, 256, 512]],
            in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), channels=32, dropout_ratio=0.1,
            num_classes=2, norm_cfg=norm_cfg, align_corners=False,
            loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False,
                             loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole')),
    train_dataset=dict(
        type='LEVIR_CD_Dataset',
        data_root=TINY,
        data_prefix=dict(img_path_from='train/A', img_path_to='train/B',
                         seg_map_path='train/label'),
        pipeline=[
            dict(type='MultiImgLoadImageFromFile'),
            dict(type='MultiImgLoadAnnotations'),
            dict(type='MultiImgRandomCrop', crop_size=(32, 32), cat_max_ratio=0.75),
            dict(type='MultiImgRandomFlip', prob=0.5),
            dict(type='MultiImgPackSegInputs')
        ]),
    val_dataset=dict(
        type='LEVIR_CD_Dataset',
        data_root=TINY,
        data_prefix=dict(img_path_from='val/A', img_path_to='val/B', seg_map_path='val/label'),
        pipeline=[
            dict(type='MultiImgLoadImageFromFile'),
            dict(type='MultiImgResize', scale=(64, 64), keep_ratio=True),
            dict(type='MultiImgLoadAnnotations'),
            dict(type='MultiImgPackSegInputs')
        ]),
    val_evaluator=dict(type='mmseg.IoUMetric', iou_metrics=['mFscore', 'mIoU']),
)


def test_open_cd_style_config_trains_and_evaluates():
    cfg = ConfigDict(copy.deepcopy(OPEN_CD))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        model.init_weights()
        train_set = DATASETS.build(cfg.train_dataset)
        val_set = DATASETS.build(cfg.val_dataset)
        evaluator = Evaluator(cfg.val_evaluator)
    assert type(model.backbone).__name__ == 'ResNetV1c'

    model.train()
    batch = pseudo_collate([train_set[i] for i in range(2)])
    assert batch['inputs'][0].shape == (6, 32, 32)
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    losses['decode.loss_ce'].backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0  # shared backbone learns

    model.eval()
    evaluator.dataset_meta = val_set.metainfo
    with torch.no_grad():
        for i in range(len(val_set)):
            data = pseudo_collate([val_set[i]])
            evaluator.process(model.test_step(data), data)
    metrics = evaluator.evaluate(len(val_set))
    assert {'mFscore', 'mPrecision', 'mRecall', 'mIoU', 'aAcc'} <= set(metrics)
    assert all(0 <= metrics[k] <= 100 for k in ('mFscore', 'mIoU', 'aAcc'))
