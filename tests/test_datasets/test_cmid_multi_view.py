import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

import cmid_mm.datasets  # noqa: F401  (registers the transforms)


def geometry_view(flip_prob=0.5, direction='horizontal'):
    return [
        dict(type='RandomResizedCropWithBox', scale=64, crop_ratio_range=(0.3, 1.0)),
        dict(type='RandomFlip', prob=flip_prob, direction=direction),
        dict(type='BlockMaskGenerator', input_size=64, block_size=32, token_stride=4),
    ]


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(cfg)


def test_shapes_dtypes_and_independent_views():
    np.random.seed(0)
    multi_view = build(dict(type='CMIDMultiView', num_views=[1, 1],
                            transforms=[geometry_view(), geometry_view()]))
    img = np.random.randint(0, 256, (100, 120, 3), np.uint8)
    out = multi_view(dict(img=img.copy(), img_path='x.png'))
    assert isinstance(out['img'], list) and len(out['img']) == 2
    assert all(v.shape == (64, 64, 3) and v.dtype == np.uint8 for v in out['img'])
    assert out['mask'].shape == (2, 16, 16) and out['mask'].dtype == np.uint8
    assert (out['mask'].reshape(2, -1).sum(1) == 3 * 64).all()  # ceil(4 * 0.6) = 3 blocks
    assert out['crop_bbox'].shape == (2, 4) and out['crop_bbox'].dtype == np.float32
    assert out['crop_src_shape'].shape == (2, 2) and out['crop_src_shape'].dtype == np.int64
    np.testing.assert_array_equal(out['crop_src_shape'], [[100, 120], [100, 120]])
    assert out['flip'].shape == (2, ) and out['flip'].dtype == bool
    assert not (out['crop_bbox'][0] == out['crop_bbox'][1]).all()
    assert out['img_path'] == 'x.png'


def test_each_view_is_its_own_crop():
    np.random.seed(1)
    multi_view = build(dict(type='CMIDMultiView', num_views=2,
                            transforms=[geometry_view(flip_prob=1.0)]))
    ys, xs = np.meshgrid(np.arange(100), np.arange(120), indexing='ij')
    coords = np.stack([ys, xs], 2).astype(np.float32)
    out = multi_view(dict(img=coords))
    assert out['flip'].tolist() == [True, True]
    for view, (top, left, height, width) in zip(out['img'], out['crop_bbox']):
        # bilinear resampling of a ramp keeps its mean: the box centre
        assert view[..., 0].mean() == pytest.approx(top + (height - 1) / 2, abs=1e-2)
        assert view[..., 1].mean() == pytest.approx(left + (width - 1) / 2, abs=1e-2)
        assert view[0, 0, 1] > view[0, -1, 1]  # flipped: columns run right to left


def test_missing_flip_is_false_and_missing_key_errors():
    # 64 px: a 2x2 block grid (a 1x1 grid would be masked whole, which is refused)
    multi_view = build(dict(type='CMIDMultiView', num_views=1, collect_keys=('flip', ),
                            transforms=[[dict(type='BlockMaskGenerator', input_size=64)]]))
    out = multi_view(dict(img=np.zeros((64, 64, 3), np.uint8)))
    assert out['flip'].tolist() == [False]
    multi_view = build(dict(type='CMIDMultiView', num_views=1,
                            transforms=[[dict(type='BlockMaskGenerator', input_size=64)]]))
    with pytest.raises(KeyError, match='crop_bbox'):
        multi_view(dict(img=np.zeros((64, 64, 3), np.uint8)))


def test_vertical_flip_rejected():
    multi_view = build(dict(type='CMIDMultiView', num_views=1,
                            transforms=[geometry_view(flip_prob=1.0, direction='vertical')]))
    with pytest.raises(ValueError, match='vertical'):
        multi_view(dict(img=np.zeros((80, 80, 3), np.uint8)))
