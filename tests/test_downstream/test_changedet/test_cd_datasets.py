"""LEVIR_CD_Dataset / CDD_Dataset: A/B/label triplets, 0/255 -> 0/1, clear errors."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

from tests.test_downstream.test_changedet.cd_utils import TINY

PIPELINE = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgPackSegInputs')
]


def _levir(split, **kw):
    cfg = dict(type='LEVIR_CD_Dataset', data_root=TINY, pipeline=PIPELINE,
               data_prefix=dict(img_path_from=f'{split}/A', img_path_to=f'{split}/B',
                                seg_map_path=f'{split}/label'))
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_levir_finds_triplets_and_maps_labels(mmseg_scope):
    names = {}
    for split in ('train', 'val', 'test'):
        ds = _levir(split)
        assert len(ds) == 4
        assert ds.metainfo['classes'] == ('unchanged', 'changed')
        info = ds.get_data_info(0)
        stems = [osp.basename(p) for p in info['img_path'] + [info['seg_map_path']]]
        assert len(set(stems)) == 1  # A, B and label of the same tile
        assert [osp.basename(osp.dirname(p)) for p in info['img_path']] == ['A', 'B']
        names[split] = {osp.basename(ds.get_data_info(i)['seg_map_path']) for i in range(4)}
    assert not (names['train'] & names['val'] or names['train'] & names['test']
                or names['val'] & names['test'])  # disjoint splits

    ds = _levir('val')
    for i in range(len(ds)):
        sample = ds[i]
        raw = np.array(Image.open(ds.get_data_info(i)['seg_map_path']))
        gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
        assert set(np.unique(raw)) == {0, 255}
        assert set(np.unique(gt)) == {0, 1} and (gt == (raw == 255)).all()
        assert sample['inputs'].shape == (6, 64, 64)


def test_levir_ann_file_selects_samples(mmseg_scope, tmp_path):
    ann = tmp_path / 'subset.txt'
    ann.write_text('y0768_x0768\ny0832_x0384.png\n')
    ds = _levir('test', ann_file=str(ann))
    assert [osp.basename(ds.get_data_info(i)['img_path'][1]) for i in range(len(ds))] == [
        'y0768_x0768.png', 'y0832_x0384.png']


def test_missing_files_are_named(mmseg_scope, tmp_path):
    root = tmp_path / 'levir'
    shutil.copytree(osp.join(TINY, 'train'), root / 'train')
    os.remove(root / 'train' / 'B' / 'y0000_x0768.png')
    with pytest.raises(FileNotFoundError, match=r"'y0000_x0768' is incomplete.*B/y0000_x0768"):
        _levir('train', data_root=str(root))
    with pytest.raises(FileNotFoundError, match='image folder .*nowhere/A.* does not exist'):
        _levir('train', data_prefix=dict(img_path_from='nowhere/A', img_path_to='train/B'))
    with pytest.raises(KeyError, match="lacks \\['img_path_to'\\]"):
        _levir('train', data_prefix=dict(img_path_from='train/A'))


def test_cdd_reads_jpeg_pairs_and_thresholds_noisy_masks(mmseg_scope, tmp_path):
    # A CDD-like split from one tiny tile: JPEG images and a JPEG mask (compression noise
    # around 0 / 255), also reachable under open-cd's name SVCD_Dataset.
    name = 'y0256_x0512'
    for sub in ('A', 'B', 'label'):
        os.makedirs(tmp_path / 'train' / sub)
    for sub in ('A', 'B'):
        Image.open(osp.join(TINY, 'train', sub, name + '.png')).convert('RGB').save(
            tmp_path / 'train' / sub / (name + '.jpg'), quality=75)
    raw = np.array(Image.open(osp.join(TINY, 'train', 'label', name + '.png')))
    Image.fromarray(raw).save(tmp_path / 'train' / 'label' / (name + '.jpg'), quality=75)
    noisy = np.array(Image.open(tmp_path / 'train' / 'label' / (name + '.jpg')))
    assert len(np.unique(noisy)) > 2  # JPEG really added grey levels

    for type_name in ('CDD_Dataset', 'SVCD_Dataset'):
        ds = DATASETS.build(dict(
            type=type_name, data_root=str(tmp_path), pipeline=PIPELINE,
            data_prefix=dict(img_path_from='train/A', img_path_to='train/B',
                             seg_map_path='train/label')))
        assert len(ds) == 1
        gt = ds[0]['data_samples'].gt_sem_seg.data.numpy()[0]
        assert set(np.unique(gt)) == {0, 1}
        assert (gt == (noisy >= 128)).all()
        assert (gt != (raw == 255)).mean() < 0.01  # the threshold recovers the clean mask
