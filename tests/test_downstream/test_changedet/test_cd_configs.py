"""The change-detection configs: open-cd vocabulary, CMID traps set, full-width models run."""
import glob
import os.path as osp

import pytest
import torch

from tests.test_downstream.test_changedet.cd_utils import (REPO, build_changedet,
                                                         changedet_config)

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'changedet', '*.py')))
NAMES = [osp.basename(c) for c in CONFIGS]
CHANNELS = {'ResNet': [256, 512, 1024, 2048], 'SwinTransformer': [128, 256, 512, 1024]}
CHANNELS['mmseg.SwinTransformer'] = CHANNELS['SwinTransformer']  # the shared Swin-B variable


def test_the_expected_configs_exist():
    # mmseg's naming scheme: algorithm_backbone_schedule_dataset-crop
    assert NAMES == [
        'bit_cmid-r50_200e_cdd-256x256.py', 'bit_cmid-swin-b_200e_cdd-256x256.py',
        'siam-upernet_cmid-r50_40k_cdd-256x256.py',
        'siam-upernet_cmid-r50_40k_levir-cd-512x512.py',
        'siam-upernet_cmid-swin-b_40k_cdd-256x256.py',
        'siam-upernet_cmid-swin-b_40k_levir-cd-512x512.py'
    ]


@pytest.mark.parametrize('name', NAMES)
def test_config_speaks_open_cd_and_sets_the_cmid_traps(name):
    cfg = changedet_config(name)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['cmid_mm.downstream.changedet'],
                                      allow_failed_imports=False)
    assert cfg.runner_type == 'SafeRunner'  # also under mmseg's / open-cd's train.py
    model = cfg.model
    assert model.type == 'SiamEncoderDecoder' and model.pretrained is None
    assert model.data_preprocessor.type == 'DualInputSegDataPreProcessor'
    assert model.data_preprocessor.mean == [123.675, 116.28, 103.53] * 2
    assert model.neck.type == 'FeatureFusionNeck' and model.neck.policy == 'concat'
    backbone = model.backbone
    assert backbone.type in CHANNELS  # plain ResNet (CMID stem), never ResNetV1c
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.checkpoint == cfg.checkpoint
    if backbone.type == 'ResNet':  # generic loader: needs the prefix
        assert backbone.init_cfg.prefix == 'backbone.' and backbone.depth == 50
    else:
        assert (backbone.embed_dims, backbone.depths) == (128, [2, 2, 18, 2])
    per_date = CHANNELS[backbone.type]
    if 'upernet' in name:
        assert model.decode_head.type == 'UPerHead'
        assert model.decode_head.in_channels == [2 * c for c in per_date]
        assert model.auxiliary_head.in_channels == 2 * per_date[2]
    else:
        assert model.decode_head.type == 'BITHead'
        assert model.decode_head.in_channels == per_date[2]  # one date, stage 3
        assert backbone.out_indices == (2, ) and model.neck.out_indices == (0, )
    dataset = 'LEVIR_CD_Dataset' if 'levir' in name else 'CDD_Dataset'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == dataset
        assert set(loader.dataset.data_prefix) == {'img_path_from', 'img_path_to',
                                                   'seg_map_path'}
        assert loader.dataset.pipeline[0].type == 'MultiImgLoadImageFromFile'
        assert loader.dataset.pipeline[-1].type == 'MultiImgPackSegInputs'
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    assert cfg.val_evaluator == dict(type='CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == (250000 if 'bit' in name else 40000)
    # best checkpoint by the `changed` class's F1 (NaN = 0), not the nan-mean mFscore
    assert cfg.default_hooks.checkpoint.save_best == 'changed_F1'
    assert cfg.default_hooks.checkpoint.rule == 'greater'


@pytest.mark.parametrize('name', ['siam-upernet_cmid-r50_40k_levir-cd-512x512.py', 'siam-upernet_cmid-swin-b_40k_cdd-256x256.py',
                                  'bit_cmid-r50_200e_cdd-256x256.py', 'bit_cmid-swin-b_200e_cdd-256x256.py'])
def test_full_width_model_runs_a_pair(name):
    cfg = changedet_config(name)
    cfg.model.backbone.init_cfg = None  # architecture only; see test_cd_cmid_weights.py
    if cfg.model.backbone.type in ('SwinTransformer', 'mmseg.SwinTransformer'):
        cfg.model.backbone.depths = [2, 2, 2, 2]  # Swin-B widths, 2 instead of 18 blocks
    model = build_changedet(cfg).eval()
    with torch.no_grad():
        logits = model._forward(torch.randn(1, 6, 64, 64))
    # UperNet predicts at 1/4 of the input, BIT at full resolution
    assert logits.shape == ((1, 2, 16, 16) if 'upernet' in name else (1, 2, 64, 64))
