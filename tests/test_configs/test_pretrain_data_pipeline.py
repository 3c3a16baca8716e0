"""The pretraining configs read images through the checked loader and folder."""
import copy
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

import cmid_mm  # noqa: F401  (registers the datasets and transforms)
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')


def test_pretrain_configs_use_the_checked_loader_and_folder():
    demo = Config.fromfile(DEMO)
    assert demo.train_dataloader.dataset.type == 'RSImageFolder'
    loader = [t for t in demo.train_dataloader.dataset.pipeline
              if t['type'] == 'LoadRSImageFromFile']
    assert loader == [dict(type='LoadRSImageFromFile', channels=3, min_size=128)]
    assert 'SkippedImagesHook' in [h['type'] for h in demo.custom_hooks]
    swin = Config.fromfile(osp.join(REPO, 'configs', 'cmid_swin_pretrain.py'))
    assert swin.train_dataloader.dataset.type == 'RSImageFolder'
    # the override documented in millionaid_cmid.py points at the loader
    assert swin.train_dataloader.dataset.pipeline[1]['type'] == 'LoadRSImageFromFile'
    init_default_scope('mmpretrain')  # as the Runner does (CMIDMultiView builds views)
    cfg = copy.deepcopy(demo.train_dataloader.dataset)
    cfg.data_root = osp.join(REPO, 'data', 'rs_sample')
    sample = DATASETS.build(cfg)[0]  # the real demo pipeline on a real image
    assert [tuple(v.shape) for v in sample['inputs']] == [(3, 128, 128)] * 2
