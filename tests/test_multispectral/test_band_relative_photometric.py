"""Photometric view-B augmentations on 13-band uint16 / float32 Sentinel-2 tiles: noise relative
to each band (not to an 8-bit or 16-bit full scale), and gain jitter / blur that do not depend
on the units of the data."""
import json
import os.path as osp

import numpy as np
import pytest
import tifffile

from cmid_mm.datasets.transforms import (RandomBandGainJitter, RandomBandGaussianBlur,
                                         RandomGaussianNoise)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TILE = osp.join(REPO, 'data', 's2_13band', 'img_dir', 'train', 's2_land_y000_x000.tif')
with open(osp.join(REPO, 'data', 's2_13band', 'band_stats.json')) as f:
    BAND_STD = json.load(f)['std']  # the demo's data_preprocessor std (B10: 3.7, B08: 1004)


def _noise(img, seed, **kwargs):
    np.random.seed(seed)
    return RandomGaussianNoise(prob=1.0, **kwargs)(dict(img=img.copy()))['img']


def test_noise_is_r_dataset_stds_in_every_band():
    img = tifffile.imread(TILE).astype(np.float32)
    out = _noise(img, 0, std_range=(0.1, 0.1), band_std=BAND_STD)
    assert out.dtype == np.float32 and out.shape == (128, 128, 13)
    measured = (out.astype(np.float64) - img).reshape(-1, 13).std(axis=0)
    # 16384 pixels per band: the std estimate is within ~1 % (3 sigma 1.7 %)
    np.testing.assert_allclose(measured, 0.1 * np.array(BAND_STD), rtol=0.02)
    # i.e. 0.1 after normalisation with the same std, in every band (B10 included)
    np.testing.assert_allclose(measured / BAND_STD, 0.1, rtol=0.02)


def test_noise_relative_to_the_image_is_unit_free():
    """Without band_std each band gets r x its own std in the image, so multiplying the data
    by 10 multiplies the noise by 10 (same seed): no 8-bit constant is involved."""
    img = tifffile.imread(TILE).astype(np.float32)
    a = _noise(img, 1, std_range=(0.05, 0.2))
    b = _noise(img * 10, 1, std_range=(0.05, 0.2))
    np.testing.assert_allclose(b - img * 10, (a - img) * 10, rtol=1e-4, atol=1e-2)
    np.random.seed(1)
    np.random.rand()
    r = np.random.uniform(0.05, 0.2)  # the strength the transform drew
    measured = (a.astype(np.float64) - img).reshape(-1, 13).std(axis=0)
    np.testing.assert_allclose(measured, r * img.reshape(-1, 13).std(axis=0), rtol=0.02)


def test_uint16_noise_stays_uint16_and_in_range():
    img = tifffile.imread(TILE)
    img[:8] = 0  # zeros: noise must clip at 0, not wrap around to 65535
    out = _noise(img, 2, std_range=(0.2, 0.2), band_std=BAND_STD)
    assert out.dtype == np.uint16
    assert out[:8].max() < 0.2 * max(BAND_STD) * 6  # clipped at 0 only, no wrap-around
    diff = out[8:].astype(np.float64) - img[8:]
    # bands with a std far above 1 DN: rounding adds only 1/12 to the variance
    for b in (0, 7, 11):
        assert diff[..., b].std() == pytest.approx(0.2 * BAND_STD[b], rel=0.03)
    # cirrus band B10 (values ~12, std 3.7): r x 3.7 = 0.74 DN of noise (+ rounding) ...
    assert diff[..., 10].std() < 1.5
    # ... while the 8-bit scale maps to ~1400 DN on uint16 (clipped at 0): > 100 x its std
    legacy = _noise(img, 2, var_range=(30., 30.))
    assert (legacy[8:].astype(np.float64) - img[8:])[..., 10].std() > 100 * BAND_STD[10]


def test_noise_arguments_are_checked():
    with pytest.raises(ValueError, match='not both'):
        RandomGaussianNoise(var_range=(10, 50), std_range=(0.1, 0.2))
    with pytest.raises(ValueError, match='band_std is only used with std_range'):
        RandomGaussianNoise(band_std=BAND_STD)
    with pytest.raises(ValueError, match='std_range must be'):
        RandomGaussianNoise(std_range=(0.2, 0.1))
    with pytest.raises(ValueError, match='has 13 values but the image has 3 band'):
        _noise(np.zeros((8, 8, 3), np.float32), 0, std_range=(0.1, 0.1), band_std=BAND_STD)
    assert 'var_range=(10.0, 50.0)' in repr(RandomGaussianNoise())  # the 8-bit default


@pytest.mark.parametrize('transform', [
    RandomBandGainJitter(prob=1.0, brightness=0.4, contrast=0.4, band_jitter=0.1),
    RandomBandGaussianBlur(prob=1.0, sigma_range=(0.5, 2.0)),
], ids=['gain_jitter', 'blur'])
def test_gain_jitter_and_blur_do_not_depend_on_units(transform):
    """Both are linear in the data around band statistics: the same draw on data x 10 gives
    the output x 10 (so they treat reflectance 0-1, DN 0-10000 or 8-bit alike)."""
    img = tifffile.imread(TILE).astype(np.float32)
    np.random.seed(4)
    a = transform(dict(img=img.copy()))['img']
    np.random.seed(4)
    b = transform(dict(img=img * 10))['img']
    assert not np.allclose(a, img)
    # float32 rounding only: errors below 1e-4 of each band's std
    band_std = (img * 10).std(axis=(0, 1))
    assert (np.abs(b - a * 10) / band_std).max() < 1e-4
