"""SegLabelCheckHook: label values outside the model's classes stop with the file name."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmengine.registry import DefaultScope
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

import cmid_mm.downstream.seg  # noqa: F401  (registers SegLabelCheckHook)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _sample(values, path):
    s = SegDataSample(metainfo=dict(seg_map_path=path))
    s.gt_sem_seg = PixelData(data=torch.tensor(np.array(values, np.int64)).view(1, 2, 2))
    return s


def _hook():
    # built through mmseg's registry whatever scope an earlier test left current
    with DefaultScope.overwrite_default_scope('mmseg'):
        return HOOKS.build(dict(type='SegLabelCheckHook'))


def _runner(num_classes=6, ignore_index=255):
    head = SimpleNamespace(num_classes=num_classes, ignore_index=ignore_index)
    return SimpleNamespace(model=SimpleNamespace(decode_head=head))


def test_valid_labels_and_ignore_index_pass():
    hook = _hook()
    batch = dict(data_samples=[_sample([0, 5, 255, 3], 'a.png')])
    hook.before_train_iter(_runner(), 0, batch)
    hook.before_val_iter(_runner(), 0, batch)


def test_out_of_range_value_names_file_and_values():
    hook = _hook()
    batch = dict(data_samples=[_sample([0, 1, 1, 0], 'ok.png'),
                               _sample([0, 6, 254, 1], 'ann_dir/train/bad.png')])
    with pytest.raises(ValueError, match=r'ann_dir/train/bad.png holds values \[6, 254\] '
                       r'outside the 6 classes 0..5 and the ignore index 255'):
        hook.before_train_iter(_runner(), 0, batch)
    # a building mask saved as 0/255 for a 2-class head whose ignore index is not 255
    with pytest.raises(ValueError, match=r'\[255\]'):
        hook.before_train_iter(_runner(num_classes=2, ignore_index=-100), 0,
                               dict(data_samples=[_sample([0, 255, 0, 0], 'm.png')]))


def test_segmentation_configs_use_the_hook():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'segmentation',
                                   'upernet_cmid-r50_4xb4-50e_potsdam-noclutter-512x512.py'))
    assert dict(type='SegLabelCheckHook') in cfg.custom_hooks
