"""13-band GeoTIFF loading (tifffile), band selection, nodata, N-band augmentations and the
per-band statistics tool, on the real Sentinel-2 tiles of data/s2_13band."""
import glob
import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import tifffile

from cmid_mm.datasets.transforms import (LoadRSImageFromFile, RandomBandGainJitter,
                                         RandomBandGaussianBlur)
from cmid_mm.datasets.transforms.loading import BadImageError
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
S2 = osp.join(REPO, 'data', 's2_13band')
TILES = sorted(glob.glob(osp.join(S2, 'img_dir', '*', '*.tif')))
TILE = osp.join(S2, 'img_dir', 'train', 's2_land_y000_x000.tif')
NAMES = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11',
         'B12']


def _band_stats_module():
    return load_tool('tools/analysis_tools/band_stats.py')


def _load(path, **kwargs):
    kwargs.setdefault('tiff_reader', 'tifffile')
    kwargs.setdefault('dtype', 'uint16')
    return LoadRSImageFromFile(**kwargs)(dict(img_path=path))


def test_sample_is_16_real_13_band_tiles_with_labels():
    assert len(TILES) == 16
    img = tifffile.imread(TILE)
    assert img.shape == (128, 128, 13) and img.dtype == np.uint16
    assert json.loads(tifffile.TiffFile(TILE).pages[0].description)['bands'] == NAMES
    assert len(glob.glob(osp.join(S2, 'ann_dir', '*', '*.png'))) == 16


def test_all_bands_and_selection_by_index_and_by_name():
    ref = tifffile.imread(TILE)
    out = _load(TILE, channels=13)
    assert out['img'].shape == (128, 128, 13) and np.array_equal(out['img'], ref)
    by_name = _load(TILE, channels=3, bands=['B04', 'B03', 'B02'], band_names=NAMES)['img']
    by_index = _load(TILE, channels=3, bands=[3, 2, 1])['img']
    assert np.array_equal(by_name, ref[..., [3, 2, 1]]) and np.array_equal(by_index, by_name)
    nir = _load(TILE, channels=1, bands=['B8A'], band_names=NAMES)['img']
    assert nir.shape == (128, 128) and np.array_equal(nir, ref[..., 8])


def test_band_selection_errors_name_the_problem():
    with pytest.raises(ValueError, match="band 'B13' is not in band_names"):
        LoadRSImageFromFile(channels=1, bands=['B13'], band_names=NAMES)
    with pytest.raises(ValueError, match='band_names is not set'):
        LoadRSImageFromFile(channels=1, bands=['B04'])
    with pytest.raises(ValueError, match='selects 2 band.*set channels=2'):
        LoadRSImageFromFile(channels=3, bands=[0, 1])
    with pytest.raises(BadImageError, match='13 band.*selects index 20'):
        _load(TILE, channels=1, bands=[20])
    with pytest.raises(BadImageError, match="13 band.*channels=3.*channels=13"):
        _load(TILE, channels=3)


def test_tifffile_reads_planar_and_interleaved_layouts(tmp_path):
    ref = tifffile.imread(TILE)
    planar = str(tmp_path / 'planar.tif')  # (bands, H, W) one page, planar configuration
    tifffile.imwrite(planar, np.moveaxis(ref, 2, 0), photometric='minisblack',
                     planarconfig='separate')
    assert np.array_equal(_load(planar, channels=13)['img'], ref)
    # one page, 13 interleaved samples: OpenCV cannot decode it, the error points to tifffile
    contig = str(tmp_path / 'contig.tif')
    tifffile.imwrite(contig, ref, photometric='minisblack', planarconfig='contig')
    with pytest.raises(BadImageError, match="tiff_reader='tifffile'"):
        _load(contig, channels=13, tiff_reader='cv2')
    assert np.array_equal(_load(contig, channels=13)['img'], ref)
    grey = str(tmp_path / 'float.tif')
    tifffile.imwrite(grey, ref[..., 0].astype(np.float32))
    img = _load(grey, channels=1, dtype='float32')['img']
    assert img.shape == (128, 128) and np.array_equal(img, ref[..., 0].astype(np.float32))


def test_missing_tifffile_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tifffile', None)  # import tifffile -> ImportError
    with pytest.raises(ImportError, match='pip install tifffile'):
        LoadRSImageFromFile(channels=13, dtype='uint16', tiff_reader='tifffile')


def test_nodata_pixels_are_filled_with_the_band_mean_and_recorded(tmp_path):
    ref = tifffile.imread(TILE)
    arr = ref.copy()
    arr[10:20, 30:50, 4] = 9999  # a block of nodata in band B05
    arr[100, :, [0, 12]] = 9999  # a row in B01 and B12
    path = str(tmp_path / 'nodata.tif')
    tifffile.imwrite(path, arr, photometric='minisblack', planarconfig='contig',
                     extratags=[(42113, 's', 0, '9999', True)])  # GDAL_NODATA
    assert not (ref == 9999).any()
    expected_mask = (arr == 9999).any(axis=2)
    expected = arr.copy()
    for b in (0, 4, 12):
        bad = arr[..., b] == 9999
        expected[..., b][bad] = np.round(arr[..., b][~bad].astype(np.float64).mean())
    for nodata in (9999, 'gdal'):
        out = _load(path, channels=13, nodata=nodata)
        assert np.array_equal(out['nodata_mask'], expected_mask)
        assert out['nodata_mask'].sum() == 10 * 20 + 128
        assert np.array_equal(out['img'], expected)
    # float image, NaN as nodata; a band without any valid pixel becomes 0
    flt = ref[..., :2].astype(np.float32)
    flt[0, 0, 0] = np.nan
    flt[..., 1] = np.nan
    fpath = str(tmp_path / 'nan.tif')
    tifffile.imwrite(fpath, flt, photometric='minisblack', planarconfig='contig')
    out = _load(fpath, channels=2, dtype='float32', nodata=float('nan'))
    assert out['nodata_mask'].all()
    assert out['img'][0, 0, 0] == pytest.approx(ref[..., 0].ravel()[1:].mean(), rel=1e-6)
    assert (out['img'][..., 1] == 0).all() and not np.isnan(out['img']).any()


def test_band_gain_jitter_scales_each_band_and_keeps_dtype():
    img = tifffile.imread(TILE)
    np.random.seed(3)
    out = RandomBandGainJitter(prob=1., brightness=0.4, contrast=0.4, band_jitter=0.)(
        dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.uint16
    # band_jitter=0: one brightness factor g for all bands, band means scale by g
    mean_in = img.reshape(-1, 13).astype(np.float64).mean(0)
    mean_out = out.reshape(-1, 13).astype(np.float64).mean(0)
    g = mean_out[7] / mean_in[7]
    assert 0.6 <= g <= 1.4 and abs(g - 1) > 1e-3
    assert np.abs(mean_out - g * mean_in).max() <= 0.51  # up to rounding to integers
    np.random.seed(3)
    out2 = RandomBandGainJitter(prob=1., band_jitter=0.2)(dict(img=img.copy()))['img']
    ratio2 = out2.reshape(-1, 13).astype(np.float64).mean(0) / img.reshape(-1, 13).mean(0)
    assert np.ptp(ratio2) > 0.01  # per-band factors differ
    assert RandomBandGainJitter(prob=0.)(dict(img=img))['img'] is img


def test_band_blur_equals_per_band_opencv_blur():
    img = tifffile.imread(TILE)
    np.random.seed(0)
    out = RandomBandGaussianBlur(prob=1., sigma_range=(1.5, 1.5))(dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.uint16
    # Bitwise although the transform blurs 4 bands per call and the reference 1: OpenCV's 8-
    # and 16-bit GaussianBlur is its bit-exact fixed-point filter (integer arithmetic, the
    # same result for any channel count and SIMD width). Float images have no such guarantee.
    for b in (0, 7, 12):
        ref = cv2.GaussianBlur(img[..., b], (11, 11), sigmaX=1.5, sigmaY=1.5,
                               borderType=cv2.BORDER_REFLECT_101)
        assert np.array_equal(out[..., b], ref)
    assert not np.array_equal(out, img)


def test_band_stats_equal_numpy_on_the_tiles(tmp_path, capsys):
    band_stats = _band_stats_module()
    out = str(tmp_path / 'stats.json')
    stats = band_stats.main([osp.join(S2, 'img_dir'), '--band-names', *NAMES, '--out', out,
                             '--percentiles', '1', '50', '99', '--quiet'])
    assert json.load(open(out)) == json.loads(json.dumps(stats))
    pixels = np.concatenate([tifffile.imread(p).reshape(-1, 13) for p in TILES])
    assert stats['bands'] == NAMES and stats['num_images'] == 16
    assert stats['num_pixels'] == [16 * 128 * 128] * 13 and stats['percentiles_exact']
    np.testing.assert_allclose(stats['mean'], pixels.mean(0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(stats['std'], pixels.std(0, dtype=np.float64), rtol=1e-9)
    for q in (1, 50, 99):
        np.testing.assert_allclose(stats['percentiles'][f'{q:g}'],
                                   np.percentile(pixels, q, axis=0), rtol=0, atol=1e-9)
    printed = capsys.readouterr().out
    assert f'mean=[{stats["mean"][0]:.2f}, ' in printed and 'to_rgb=False' in printed
    # the demo config's preprocessor uses these statistics
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cmid_demo_resnet18_s2-13band.py'))
    np.testing.assert_allclose(cfg.model.data_preprocessor.mean, stats['mean'], atol=0.006)
    np.testing.assert_allclose(cfg.model.data_preprocessor.std, stats['std'], atol=0.006)
    # selection by name and nodata exclusion
    sel = band_stats.compute_band_stats(TILES[:2], tiff_reader='tifffile', bands=['B10'],
                                        band_names=NAMES, nodata=12, quiet=True)
    b10 = np.concatenate([tifffile.imread(p)[..., 10].ravel() for p in TILES[:2]])
    assert sel['bands'] == ['B10'] and sel['num_pixels'] == [int((b10 != 12).sum())]
    assert sel['mean'][0] == pytest.approx(b10[b10 != 12].mean(), rel=1e-12)
