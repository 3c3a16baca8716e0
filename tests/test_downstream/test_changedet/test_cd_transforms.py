"""MultiImg* transforms: both dates and the label get the same crop / flip / resize."""
import os.path as osp

import numpy as np
import pytest
from mmcv.transforms import Compose
from PIL import Image

from tests.test_downstream.test_changedet.cd_utils import TINY

H, W = 12, 10


def _results():
    """Date 1 pixel (y, x) = y * W + x (all channels), date 2 = date 1 + 100, and the label
    = the same index, so any misalignment between the three shows up as a wrong value."""
    idx = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    img1 = np.repeat(idx[..., None], 3, axis=2)
    return dict(img=[img1, img1 + 100], gt_seg_map=idx.copy(), seg_fields=['gt_seg_map'],
                img_shape=(H, W), ori_shape=(H, W))


def _aligned(res):
    a, b = res['img']
    assert a.shape == b.shape and a.shape[:2] == res['gt_seg_map'].shape
    assert (b.astype(int) - a.astype(int) == 100).all()
    assert (a[..., 0] == res['gt_seg_map']).all()


def test_random_crop_same_window_for_dates_and_label(mmseg_scope):
    crop = Compose([dict(type='MultiImgRandomCrop', crop_size=(5, 4), cat_max_ratio=0.75)])
    offsets = set()
    for seed in range(6):
        np.random.seed(seed)
        res = crop(_results())
        _aligned(res)
        assert res['img'][0].shape == (5, 4, 3) and res['img_shape'] == (5, 4)
        top_left = int(res['gt_seg_map'][0, 0])
        offsets.add(top_left)
        # a contiguous window of the original index grid
        y0, x0 = divmod(top_left, W)
        assert (res['gt_seg_map'] == _results()['gt_seg_map'][y0:y0 + 5, x0:x0 + 4]).all()
    assert len(offsets) > 1  # the window is random


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_random_flip_same_flip_for_dates_and_label(mmseg_scope, direction):
    flip = Compose([dict(type='MultiImgRandomFlip', prob=1.0, direction=direction)])
    res = flip(_results())
    _aligned(res)
    assert res['flip'] is True and res['flip_direction'] == direction
    expected = {'horizontal': W - 1, 'vertical': (H - 1) * W,
                'diagonal': H * W - 1}[direction]
    assert res['img'][0][0, 0, 0] == expected  # the original corner that moved to (0, 0)
    res = Compose([dict(type='MultiImgRandomFlip', prob=0.0)])(_results())
    assert res['flip'] is False and res['img'][0][0, 0, 0] == 0


def test_resize_same_scale_for_both_dates(mmseg_scope):
    res = _results()
    res['img'] = [im.astype(np.float32) for im in res['img']]
    res = Compose([dict(type='MultiImgResize', scale=(20, 24), keep_ratio=True)])(res)
    a, b = res['img']
    assert a.shape == b.shape == (24, 20, 3) and res['gt_seg_map'].shape == (24, 20)
    np.testing.assert_allclose(b - a, 100., atol=1e-3)  # bilinear is linear
    assert set(np.unique(res['gt_seg_map'])) <= set(range(H * W))  # nearest: no new labels
    assert res['scale_factor'] == (2.0, 2.0) and res['img_shape'] == (24, 20)


def test_load_pack_real_tiny_pair(mmseg_scope):
    name = 'y0256_x0512.png'
    pipeline = Compose([
        dict(type='MultiImgLoadImageFromFile'),
        dict(type='MultiImgLoadAnnotations'),
        dict(type='MultiImgPackSegInputs')
    ])
    paths = [osp.join(TINY, 'train', d, name) for d in ('A', 'B')]
    label_path = osp.join(TINY, 'train', 'label', name)
    packed = pipeline(dict(img_path=paths, seg_map_path=label_path, reduce_zero_label=False,
                           format_seg_map='to_binary', seg_fields=[]))
    a = np.array(Image.open(paths[0]))  # single-band PNG, replicated to 3 channels
    b = np.array(Image.open(paths[1]))
    raw = np.array(Image.open(label_path))
    x = packed['inputs'].numpy()
    assert x.shape == (6, 64, 64)
    for c in range(3):
        assert (x[c] == a).all() and (x[3 + c] == b).all()  # date 1 first
    assert set(np.unique(raw)) == {0, 255}
    gt = packed['data_samples'].gt_sem_seg.data.numpy()[0]
    assert (gt == raw // 255).all() and 0.3 < gt.mean() < 0.45  # README: 0.387 changed
    assert packed['data_samples'].metainfo['img_path'] == paths


def test_wrong_inputs_are_clear_errors(mmseg_scope):
    load = Compose([dict(type='MultiImgLoadImageFromFile')])
    with pytest.raises(TypeError, match='must list the files of both dates'):
        load(dict(img_path=osp.join(TINY, 'train', 'A', 'y0256_x0512.png')))
    crop = Compose([dict(type='MultiImgRandomCrop', crop_size=4)])
    with pytest.raises(TypeError, match='list of images of both dates'):
        crop(dict(img=np.zeros((8, 8, 3), np.uint8), seg_fields=[]))
