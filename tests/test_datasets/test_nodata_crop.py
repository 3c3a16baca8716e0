"""No-data in training: crops with too much no-data are redrawn (bounded, seeded), and the
no-data mask stays aligned with the view through crop, resize and flip."""
import cv2
import numpy as np
import pytest
import tifffile
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

import cmid_mm.datasets  # noqa: F401  (registers the transforms)
from cmid_mm.datasets.transforms import PerSampleSeed, RandomResizedCropWithBox


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(cfg)


def left_nodata(h=100, w=100, cols=50):
    """A 13-band float image whose band 0 is 1000 on the no-data columns, 0 elsewhere."""
    mask = np.zeros((h, w), bool)
    mask[:, :cols] = True
    img = np.random.rand(h, w, 13).astype(np.float32)
    img[..., 0] = mask * 1000.
    return img, mask


def nodata_share(mask, box):
    top, left, height, width = np.asarray(box).astype(int)
    return mask[top:top + height, left:left + width].mean()


# (no-data columns on the left of a 100x100 image, max_nodata_ratio, seed, index of the first
# of the plain crop's 10 successive draws that qualifies: found by listing those draws)
@pytest.mark.parametrize('cols, max_ratio, seed, first_good', [
    (50, 0.1, 0, 5), (50, 0.1, 1, 3), (50, 0.1, 9, 0), (85, 0.0, 2, None)])
def test_redraw_takes_the_first_good_crop_else_the_least_nodata(cols, max_ratio, seed,
                                                                first_good):
    """The chosen box is the first of the plain crop's successive draws (same seed) whose
    no-data share is <= max_nodata_ratio; if none of the 10 is, the one with the least."""
    img, mask = left_nodata(cols=cols)
    kwargs = dict(scale=32, crop_ratio_range=(0.05, 0.2))
    plain = RandomResizedCropWithBox(**kwargs)
    np.random.seed(seed)
    draws = [plain.rand_crop_params(img) for _ in range(10)]
    shares = [nodata_share(mask, b) for b in draws]
    good = [i for i, s in enumerate(shares) if s <= max_ratio]
    assert (good[0] if good else None) == first_good

    crop = RandomResizedCropWithBox(**kwargs, max_nodata_ratio=max_ratio, nodata_max_tries=10)
    np.random.seed(seed)
    out = crop(dict(img=img, nodata_mask=mask))
    chosen = first_good if good else int(np.argmin(shares))
    np.testing.assert_array_equal(out['crop_bbox'], draws[chosen])
    if first_good is None:  # 15 data columns, crops >= 19 px wide: none is free of no-data
        assert 0 < nodata_share(mask, out['crop_bbox']) == min(shares) < max(shares)
    assert out['img'].shape == (32, 32, 13) and out['nodata_mask'].shape == (32, 32)
    # the draws after the crop continue where its last draw stopped
    np.random.seed(seed)
    for _ in range(first_good + 1 if good else 10):
        plain.rand_crop_params(img)
    expected_next = np.random.rand()
    np.random.seed(seed)
    crop(dict(img=img, nodata_mask=mask))
    assert np.random.rand() == expected_next


def test_without_nodata_pixels_the_draws_are_unchanged():
    img = np.random.RandomState(0).rand(80, 90, 4).astype(np.float32)
    kwargs = dict(scale=32, crop_ratio_range=(0.05, 0.2))
    np.random.seed(5)
    ref = RandomResizedCropWithBox(**kwargs)(dict(img=img.copy()))
    ref_next = np.random.rand()
    np.random.seed(5)
    out = RandomResizedCropWithBox(**kwargs, max_nodata_ratio=0.)(
        dict(img=img.copy(), nodata_mask=np.zeros((80, 90), bool)))
    assert np.random.rand() == ref_next  # no extra draw
    np.testing.assert_array_equal(out['crop_bbox'], ref['crop_bbox'])
    np.testing.assert_array_equal(out['img'], ref['img'])
    assert not out['nodata_mask'].any()


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_mask_is_cropped_and_resized_with_the_image(backend):
    np.random.seed(7)
    img, mask = left_nodata(cols=50)
    out = RandomResizedCropWithBox(scale=(24, 40), crop_ratio_range=(0.3, 0.6),
                                   interpolation='nearest', backend=backend)(
                                       dict(img=img, nodata_mask=mask))
    assert out['nodata_mask'].shape == (24, 40) and out['nodata_mask'].dtype == bool
    top, left, height, width = out['crop_bbox'].astype(int)
    expected = cv2.resize(mask[top:top + height, left:left + width].astype(np.uint8), (40, 24),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    if backend == 'cv2':
        np.testing.assert_array_equal(out['nodata_mask'], expected)
    else:  # Pillow's nearest picks other source pixels at the edge: at most one column off
        assert np.abs(out['nodata_mask'].sum(1) - expected.sum(1)).max() <= 1
    # aligned with the image, resampled with the same filter: band 0 is 1000 exactly on no-data
    np.testing.assert_array_equal(out['img'][..., 0] == 1000., out['nodata_mask'])
    assert 0 < out['nodata_mask'].mean() < 1  # the test is not trivial (crop on the border)


def test_multi_view_flips_and_stacks_the_mask():
    view = [dict(type='RandomResizedCropWithBox', scale=32, crop_ratio_range=(0.3, 0.6),
                 interpolation='nearest'),
            dict(type='RandomFlip', prob=1.0, direction='horizontal')]
    multi_view = build(dict(type='CMIDMultiView', num_views=[1, 1],
                            transforms=[view[:1], view], collect_keys=('crop_bbox', 'flip')))
    np.random.seed(11)
    img, mask = left_nodata(cols=50)
    out = multi_view(dict(img=img, nodata_mask=mask))
    assert out['flip'].tolist() == [False, True]
    assert out['nodata_mask'].shape == (2, 32, 32) and out['nodata_mask'].dtype == bool
    for v in range(2):
        np.testing.assert_array_equal(out['img'][v][..., 0] == 1000., out['nodata_mask'][v])
    # no-data is on the left of the source: on the left of view A, on the right of flipped B
    a, b = out['nodata_mask'][0], out['nodata_mask'][1]
    assert a[:, 0].all() and not a[:, -1].any(), 'crop boxes straddle column 50 (seed 11)'
    assert b[:, -1].any() and not b[:, 0].all()


def test_misaligned_masks_are_errors():
    with pytest.raises(ValueError, match='does not match the 10x10 image'):
        RandomResizedCropWithBox(scale=8)(dict(img=np.zeros((10, 10, 3), np.float32),
                                               nodata_mask=np.zeros((12, 10), bool)))
    multi_view = build(dict(type='CMIDMultiView', num_views=1, collect_keys=(),
                            transforms=[[dict(type='Resize', scale=(8, 8))]]))
    with pytest.raises(ValueError, match='view 0: nodata_mask .* crop with RandomResized'):
        multi_view(dict(img=np.zeros((10, 10, 3), np.float32),
                        nodata_mask=np.zeros((10, 10), bool)))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match='max_nodata_ratio'):
            RandomResizedCropWithBox(scale=8, max_nodata_ratio=bad)
    with pytest.raises(ValueError, match='nodata_max_tries'):
        RandomResizedCropWithBox(scale=8, max_nodata_ratio=0.5, nodata_max_tries=0)


def test_nodata_pipeline_is_a_function_of_the_sample_seed(tmp_path):
    """Load a GeoTIFF with no-data -> two views with redrawn crops: under PerSampleSeed the
    same (seed, epoch, sample) gives the same views and masks whatever ran before."""
    rng = np.random.RandomState(0)
    arr = rng.randint(1, 5000, (96, 96, 13)).astype(np.uint16)
    arr[:, :40] = 0  # 42 % no-data (a scene edge)
    path = str(tmp_path / 'edge.tif')
    tifffile.imwrite(path, arr, photometric='minisblack', planarconfig='contig')
    view = [dict(type='RandomResizedCropWithBox', scale=32, crop_ratio_range=(0.1, 0.3),
                 max_nodata_ratio=0.2),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='BlockMaskGenerator', input_size=32, block_size=16)]
    seed_t = PerSampleSeed()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([
            seed_t,
            dict(type='LoadRSImageFromFile', channels=13, dtype='uint16',
                 tiff_reader='tifffile', nodata=0),
            dict(type='CMIDMultiView', num_views=[1, 1], transforms=[view, view]),
        ])
    seed_t.set_epoch(seed=3, epoch=1)
    runs = []
    for noise in range(2):
        np.random.seed(100 + noise)  # whatever state the process RNG is in
        np.random.rand(noise + 1)
        runs.append(pipeline(dict(img_path=path, sample_idx=4)))
    a, b = runs
    for key in ('crop_bbox', 'flip', 'mask', 'nodata_mask'):
        np.testing.assert_array_equal(a[key], b[key])
    for va, vb in zip(a['img'], b['img']):
        np.testing.assert_array_equal(va, vb)
    assert a['nodata_mask'].shape == (2, 32, 32)
    src_mask = (arr == 0).any(axis=2)
    assert [nodata_share(src_mask, box) <= 0.2 for box in a['crop_bbox']] == [True, True]
    seed_t.set_epoch(seed=3, epoch=2)  # another epoch: other crops
    assert not np.array_equal(pipeline(dict(img_path=path, sample_idx=4))['crop_bbox'],
                              a['crop_bbox'])
