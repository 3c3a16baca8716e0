import cv2
import numpy as np
import pytest
from mmcv.transforms import RandomFlip
from mmpretrain.datasets.transforms import RandomResizedCrop
from PIL import Image

from cmid_mm.datasets import RandomResizedCropWithBox


def coordinate_image(height, width):
    """float32 (H, W, 2) image whose channels are the pixel's own row and column."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    return np.stack([ys, xs], axis=2).astype(np.float32)


@pytest.mark.parametrize('seed', range(5))
def test_box_matches_cropped_pixels(seed):
    np.random.seed(seed)
    src = coordinate_image(60, 80)
    crop = RandomResizedCropWithBox(16, crop_ratio_range=(0.1, 1.0), interpolation='bilinear')
    out = crop(dict(img=src.copy(), img_path='coords.tif'))
    top, left, height, width = out['crop_bbox']
    assert out['crop_bbox'].dtype == np.float32
    np.testing.assert_array_equal(out['crop_src_shape'], [60, 80])
    assert out['crop_src_shape'].dtype == np.int64
    assert out['img'].shape == (16, 16, 2) and out['img_shape'] == (16, 16)
    assert 0 <= top and top + height <= 60 and 0 <= left and left + width <= 80
    # bilinear resampling of a linear ramp is linear: the view's mean is the box centre
    assert out['img'][..., 0].mean() == pytest.approx(top + (height - 1) / 2, abs=1e-3)
    assert out['img'][..., 1].mean() == pytest.approx(left + (width - 1) / 2, abs=1e-3)
    # the corner pixels come from the box corners (within half an output pixel's footprint)
    tol_y, tol_x = max(height / 16, 1) / 2, max(width / 16, 1) / 2
    assert abs(out['img'][0, 0, 0] - top) <= tol_y
    assert abs(out['img'][0, 0, 1] - left) <= tol_x
    assert abs(out['img'][-1, -1, 0] - (top + height - 1)) <= tol_y
    assert abs(out['img'][-1, -1, 1] - (left + width - 1)) <= tol_x


def test_flip_puts_rightmost_source_column_first():
    np.random.seed(3)
    crop = RandomResizedCropWithBox(16, crop_ratio_range=(0.1, 1.0), interpolation='bilinear')
    out = RandomFlip(prob=1.0, direction='horizontal')(crop(dict(img=coordinate_image(60, 80))))
    assert out['flip'] is True
    top, left, height, width = out['crop_bbox']
    tol_x = max(width / 16, 1) / 2
    assert abs(out['img'][:, 0, 1] - (left + width - 1)).max() <= tol_x
    assert abs(out['img'][:, -1, 1] - left).max() <= tol_x
    assert out['img'][0, 0, 0] == pytest.approx(out['img'][0, -1, 0])


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_same_draws_and_pixels_as_mmpretrain(backend):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (50, 70, 3), dtype=np.uint8)
    kwargs = dict(scale=24, crop_ratio_range=(0.3, 1.0), interpolation='bicubic',
                  backend=backend)
    np.random.seed(11)
    expected = RandomResizedCrop(**kwargs)(dict(img=img.copy()))['img']
    np.random.seed(11)
    out = RandomResizedCropWithBox(**kwargs)(dict(img=img.copy()))
    np.testing.assert_array_equal(out['img'], expected)
    # and the recorded box reproduces it
    top, left, height, width = out['crop_bbox'].astype(int)
    crop = img[top:top + height, left:left + width]
    if backend == 'pillow':
        ref = np.asarray(Image.fromarray(crop).resize((24, 24), Image.BICUBIC))
    else:
        ref = cv2.resize(crop, (24, 24), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out['img'], ref)


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_thirteen_band_uint16(backend):
    rng = np.random.RandomState(1)
    img = rng.randint(0, 10000, (40, 48, 13)).astype(np.uint16)
    img[..., 4] = 4000  # a constant band must stay exactly constant
    np.random.seed(5)
    out = RandomResizedCropWithBox(20, interpolation='bilinear', backend=backend)(
        dict(img=img.copy()))
    assert out['img'].shape == (20, 20, 13) and out['img'].dtype == np.uint16
    assert (out['img'][..., 4] == 4000).all()
    top, left, height, width = out['crop_bbox'].astype(int)
    crop = img[top:top + height, left:left + width]
    for band in (0, 7, 12):
        if backend == 'cv2':
            # cv2 resizes the bands in groups of 4 (what it takes at once): the same call on
            # the band's group is the same computation, so it is equal bit for bit ...
            g = band // 4 * 4
            ref = cv2.resize(np.ascontiguousarray(crop[..., g:g + 4]), (20, 20),
                             interpolation=cv2.INTER_LINEAR).reshape(20, 20, -1)[..., band - g]
            np.testing.assert_array_equal(out['img'][..., band], ref)
            # ... and within 1 of the band resized alone: cv2's 16-bit bilinear works in float
            # and its 1- and 4-channel kernels round differently (measured: 1 level at a few
            # pixels for some sizes, which sizes depends on the CPU), so no bitwise claim here
            alone = cv2.resize(crop[..., band], (20, 20), interpolation=cv2.INTER_LINEAR)
            assert np.abs(out['img'][..., band].astype(int) - alone).max() <= 1
        else:  # Pillow: one band at a time, exactly this call
            ref = np.asarray(Image.fromarray(crop[..., band].astype(np.float32)).resize(
                (20, 20), Image.BILINEAR))
            ref = np.clip(np.round(ref), 0, 65535).astype(np.uint16)
            np.testing.assert_array_equal(out['img'][..., band], ref)


def test_float32_bands_and_2d_image():
    np.random.seed(0)
    img = np.random.rand(30, 30, 6).astype(np.float32)
    out = RandomResizedCropWithBox(10, backend='pillow')(dict(img=img))
    assert out['img'].shape == (10, 10, 6) and out['img'].dtype == np.float32
    out = RandomResizedCropWithBox(10, backend='cv2')(dict(img=img[..., 0]))
    assert out['img'].shape == (10, 10)


def test_empty_image_error_names_file():
    crop = RandomResizedCropWithBox(8)
    with pytest.raises(ValueError, match=r"0x12 from 'bad\.png'"):
        crop(dict(img=np.zeros((0, 12, 3), np.uint8), img_path='bad.png'))
