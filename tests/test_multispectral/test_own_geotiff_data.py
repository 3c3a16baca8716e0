"""The documented own-data setup (docs/pretraining_own_data.md, docs/multispectral.md): the
13-band demo config reading a file list of GeoTIFFs in sub-folders, with no-data handling
(`nodata=0`, `max_nodata_ratio`) and the no-data mask packed into the data samples."""
import os
import os.path as osp

import numpy as np
import pytest
import tifffile
from mmengine.registry import init_default_scope

import cmid_mm  # noqa: F401  (registers the dataset and transforms)
from tests.test_multispectral.test_13band_transformers import REPO, demo_dataset_cfg

TILE = osp.join(REPO, 'data', 's2_13band', 'img_dir', 'train', 's2_land_y000_x000.tif')
EDGE_COLS = 32  # the scene edge: the left 32 of 128 columns are 0 in every band (25 %)
MAX_RATIO = 0.15


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """An archive with sub-folders and a file list: ``a/edge.tif`` (a tile at the scene's
    edge) and ``b/c/full.tif`` (the whole tile); the list has one relative path per line."""
    root = tmp_path_factory.mktemp('archive')
    tile = tifffile.imread(TILE)
    assert tile.min() > 0  # the only zeros are the ones the test writes
    edge = tile.copy()
    edge[:, :EDGE_COLS] = 0
    for rel, arr in (('a/edge.tif', edge), ('b/c/full.tif', tile)):
        os.makedirs(osp.dirname(root / rel), exist_ok=True)
        tifffile.imwrite(str(root / rel), arr, photometric='minisblack', planarconfig='contig')
    (root / 'train.txt').write_text('a/edge.tif\nb/c/full.tif\n')
    return root, tile


def _dataset(root):
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg = demo_dataset_cfg(RandomResizedCropWithBox=dict(max_nodata_ratio=MAX_RATIO))
    cfg.update(data_root=str(root), data_prefix='', ann_file='train.txt')
    for t in cfg.pipeline:
        if t['type'] == 'LoadRSImageFromFile':
            t['nodata'] = 0  # Sentinel-2 L1C's no-data value
        elif t['type'] == 'PackInputs':
            t['algorithm_keys'] = list(t['algorithm_keys']) + ['nodata_mask']
    return DATASETS.build(cfg)


def test_file_list_of_geotiffs_with_nodata(archive):
    root, tile = archive
    dataset = _dataset(root)
    assert len(dataset) == 2
    assert [osp.relpath(dataset.get_data_info(i)['img_path'], root) for i in range(2)] == [
        'a/edge.tif', 'b/c/full.tif']

    np.random.seed(1)  # a seed where view A shows some no-data (5 columns)
    edge, full = dataset[0], dataset[1]
    sample = edge['data_samples']
    assert [tuple(v.shape) for v in edge['inputs']] == [(13, 128, 128)] * 2
    assert sample.nodata_mask.shape == (2, 128, 128) and sample.nodata_mask.dtype == bool
    assert not full['data_samples'].nodata_mask.any()
    src_mask = np.zeros((128, 128), bool)
    src_mask[:, :EDGE_COLS] = True
    shares = [src_mask[t:t + h, x:x + w].mean()
              for t, x, h, w in sample.crop_bbox.astype(int)]
    assert max(shares) <= MAX_RATIO
    # what the loader filled in: each band's mean over the tile's valid pixels (rounded), which
    # view A (crop, bicubic resize, flip; no photometric change) keeps in the no-data area
    fill = np.round(tile[:, EDGE_COLS:].reshape(-1, 13).astype(np.float64).mean(0))
    view_a = edge['inputs'][0].numpy().transpose(1, 2, 0)
    mask_a = sample.nodata_mask[0]
    assert 0 < mask_a.mean() <= MAX_RATIO
    np.testing.assert_allclose(np.median(view_a[mask_a], axis=0), fill, rtol=1e-6)
    # the mask is where view A shows the fill value (bicubic blends one or two columns)
    at_fill = np.isclose(view_a, fill, rtol=1e-6).all(axis=2)
    assert (at_fill != mask_a).sum(axis=1).max() <= 3


def test_nodata_mode_all_keeps_genuine_zeros_of_one_band(tmp_path):
    """Sentinel-2 L1C: 0 = no data in every band, but the cirrus band B10 has real zeros (two
    in this tile, at (5, 96) and (17, 36)). nodata_mode='all' marks only the scene edge."""
    from cmid_mm.datasets.transforms import LoadRSImageFromFile
    tile = tifffile.imread(osp.join(REPO, 'data', 's2_13band', 'img_dir', 'val',
                                    's2_coast_y000_x256.tif'))
    assert [tuple(p) for p in np.argwhere(tile == 0)] == [(5, 96, 10), (17, 36, 10)]
    edge = tile.copy()
    edge[:, :EDGE_COLS] = 0
    path = str(tmp_path / 'edge.tif')
    tifffile.imwrite(path, edge, photometric='minisblack', planarconfig='contig')
    load = dict(channels=13, dtype='uint16', tiff_reader='tifffile', nodata=0)
    any_ = LoadRSImageFromFile(**load)(dict(img_path=path))
    all_ = LoadRSImageFromFile(**load, nodata_mode='all')(dict(img_path=path))
    assert any_['nodata_mask'].sum() == EDGE_COLS * 128 + 2
    assert all_['nodata_mask'].sum() == EDGE_COLS * 128
    assert all_['img'][5, 96, 10] == 0 and all_['img'][17, 36, 10] == 0  # kept as data
    b10_fill = np.round(tile[:, EDGE_COLS:, 10].astype(np.float64).sum() /
                        (tile[:, EDGE_COLS:, 10].size - 2))  # mean of the non-zero B10 pixels
    assert any_['img'][5, 96, 10] == b10_fill > 0  # 'any': filled like no-data
    # the edge is filled with each band's mean over the valid pixels in both modes
    np.testing.assert_array_equal(all_['img'][:, :EDGE_COLS, :10], any_['img'][:, :EDGE_COLS, :10])
    with pytest.raises(ValueError, match="nodata_mode='both'"):
        LoadRSImageFromFile(**load, nodata_mode='both')
