"""Label derivation, spatial splits and leakage of projects/benchmarks/make_rs_study.py."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DATA = osp.join(REPO, 'data', 'rs_study')
# the real imagery collection, when a checkout sits beside it (not shipped with the repository)
RS_REAL = osp.abspath(osp.join(REPO, '..', 'shared', 'data', 'rs_real'))


def _load(name, path):
    return load_tool(path, name)


conv = _load('make_rs_study', 'projects/benchmarks/make_rs_study.py')


def test_presence_label_threshold_and_ambiguous():
    # 10x10 patch, 5 % -> at least 5 positive pixels
    assert conv.presence_label(5, 10, 0.05) == 1
    assert conv.presence_label(100, 10, 0.05) == 1
    assert conv.presence_label(4, 10, 0.05) is None
    assert conv.presence_label(1, 10, 0.05) is None
    assert conv.presence_label(0, 10, 0.05) == 0
    # the study's rule: 1 % of a 64 px patch = 40.96 -> 41 pixels
    assert conv.presence_label(41, 64) == 1 and conv.presence_label(40, 64) is None


def test_count_bins_and_majority():
    assert [conv.count_bin(n) for n in range(8)] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert conv.majority_label(np.array([[2, 2], [1, 0]]), 3) == 2
    assert conv.majority_label(np.array([[1, 1], [2, 2]]), 3) == 1  # tie -> lower class
    boxes = np.array([[0, 0, 4, 4],     # centre (x, y) = (2, 2)
                      [6, 0, 10, 2],    # (8, 1)
                      [3, 5, 5, 9],     # (4, 7)
                      [4, 4, 4, 4]])    # (4, 4)
    # patch top=0, left=0, size=4 covers x, y in [0, 4): only (2, 2); (4, 4) is on the far edge
    assert conv.box_centres_in(boxes, 0, 0, 4) == 1
    # top=4, left=4 covers x, y in [4, 8): (4, 7) and (4, 4)
    assert conv.box_centres_in(boxes, 4, 4, 4) == 2
    # top=0, left=4 covers x in [4, 8), y in [0, 4): nothing ((8, 1) has x = 8)
    assert conv.box_centres_in(boxes, 0, 4, 4) == 0
    assert conv.box_centres_in(np.zeros((0, 4)), 0, 0, 4) == 0


def test_split_zones_and_assignment():
    sp = conv.make_split('x', 10, gap=2)
    assert sp.train == (0, 4) and sp.test == (6, 10)
    assert conv.assign_split(sp, top=5, left=0, size=2) == 'train'
    assert conv.assign_split(sp, top=0, left=2, size=2) == 'train'
    assert conv.assign_split(sp, top=0, left=3, size=2) is None  # reaches into the gap
    assert conv.assign_split(sp, top=0, left=4, size=2) is None  # the gap itself
    assert conv.assign_split(sp, top=0, left=5, size=2) is None  # straddles gap and test
    assert conv.assign_split(sp, top=0, left=6, size=2) == 'test'
    assert conv.assign_split(sp, top=0, left=8, size=2) == 'test'
    spy = conv.make_split('y', 9, gap=3)  # mid 4.5 -> train [0, 3), test [6, 9)
    assert spy.train == (0, 3) and spy.test == (6, 9)
    assert conv.assign_split(spy, top=6, left=100, size=3) == 'test'
    assert conv.held_out_rect(sp, 7, 10) == (0, 4, 7, 10)
    assert conv.held_out_rect(spy, 9, 5) == (3, 0, 9, 5)
    with pytest.raises(ValueError):
        conv.make_split('z', 10, 2)


def test_presence_patches_hand_computed():
    mask = np.zeros((4, 10), np.uint8)
    mask[0, 0] = 1                     # patch (0, 0): 1 px  -> ambiguous at 50 %
    mask[0:2, 2:4] = 1                 # patch (0, 2): 4 px  -> 1
    mask[2:4, 8:10] = 1                # patch (2, 8): 4 px  -> 1 (test zone)
    mask[3, 6] = 1                     # patch (2, 6): 1 px  -> ambiguous
    sp = conv.make_split('x', 10, gap=2)
    patches, dropped = conv.presence_patches(mask, sp, size=2, stride=2, scene='s',
                                             min_frac=0.5)
    got = {(p['top'], p['left']): (p['label'], p['split']) for p in patches}
    assert got == {
        (0, 2): (1, 'train'), (2, 0): (0, 'train'), (2, 2): (0, 'train'),
        (0, 6): (0, 'test'), (0, 8): (0, 'test'), (2, 8): (1, 'test'),
    }
    assert dropped == dict(gap=2, ambiguous=2)  # (0, 4), (2, 4); (0, 0), (2, 6)


def test_count_patches_hand_computed():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [0, 2, 2, 4],   # centres (1,1) (2,2) (1,3)
                      [6, 6, 8, 8], [7, 7, 7, 7]])                # (7,7) (7,7)
    sp = conv.make_split('y', 10, gap=2)  # train rows [0, 4), test [6, 10)
    patches = conv.count_patches(boxes, (10, 10), sp, size=4, stride=6, scene='n')
    got = {(p['top'], p['left']): (p['count'], p['label'], p['split']) for p in patches}
    # patch (0,0) holds centres (1,1), (2,2), (1,3) -> 3 -> bin 1; (6,6) holds two -> bin 1
    assert got == {(0, 0): (3, 1, 'train'), (0, 6): (0, 0, 'train'),
                   (6, 0): (0, 0, 'test'), (6, 6): (2, 1, 'test')}


def test_box_downsample_exact():
    img = np.arange(7 * 7, dtype=np.uint8).reshape(7, 7)
    small = conv.box_downsample(img, 3)
    assert small.shape == (2, 2)
    assert small[0, 0] == round(img[:3, :3].mean()) and small[1, 1] == round(img[3:6, 3:6].mean())


# --- the committed data ---------------------------------------------------------------------
@pytest.fixture(scope='module')
def manifest():
    return json.load(open(osp.join(DATA, 'manifest.json')))


def _tasks(manifest):
    return {name: json.load(open(osp.join(DATA, path)))
            for name, path in manifest['tasks'].items()}


def test_committed_pool_never_touches_a_test_zone_or_gap(manifest):
    held = manifest['pretrain']['held_out_rects_tlbr']
    # which held-out rectangle applies to which tile prefix (same pixel grid as the tiles)
    applies = {'s2': 's2', 'bld': 'bld', 'road': 'road', 'neon528_30cm': 'neon528',
               'neon541_30cm': 'neon541', 'l8': None}
    assert manifest['pretrain']['num_tiles'] == len(manifest['pretrain']['tiles']) >= 150
    for tile in manifest['pretrain']['tiles']:
        prefix = tile['file'].rsplit('_y', 1)[0]
        assert prefix in applies, tile['file']
        assert osp.isfile(osp.join(DATA, 'pretrain', 'images', tile['file']))
        key = applies[prefix]
        if key is None:
            continue
        box = (tile['top'], tile['left'], tile['top'] + tile['size'],
               tile['left'] + tile['size'])
        assert not conv.intersects(box, tuple(held[key])), (tile['file'], held[key])


def test_committed_held_out_rects_cover_every_test_patch(manifest):
    """The rectangles the pool avoids contain every test patch (in the pool's pixel grid)."""
    held = manifest['pretrain']['held_out_rects_tlbr']
    key_of = {'building': 'bld', 'road': 'road', 'neon528': 'neon528', 'neon541': 'neon541',
              's2': 's2'}
    for name, task in _tasks(manifest).items():
        if task['kind'] != 'patch':
            continue
        for p in task['patches']:
            scene = task['scenes'][p['scene']]
            oy, ox = scene['offset_yx']  # the S2 probe scene is a window of the full image
            rect = held[key_of[p['scene']]]
            inside = (rect[0] <= p['top'] + oy and p['top'] + oy + p['size'] <= rect[2] and
                      rect[1] <= p['left'] + ox and p['left'] + ox + p['size'] <= rect[3])
            assert inside == (p['split'] == 'test'), (name, p)


def test_committed_labels_match_the_masks(manifest):
    tasks = _tasks(manifest)
    for name in ('building', 'road'):
        task = tasks[name]
        mask = np.asarray(Image.open(osp.join(DATA, 'probes', task['scenes'][name]['mask'])))
        assert set(np.unique(mask)) <= {0, 1}
        for p in task['patches'][::7]:
            n = int(mask[p['top']:p['top'] + p['size'], p['left']:p['left'] + p['size']].sum())
            assert n == p['positive_pixels']
            assert conv.presence_label(n, p['size']) == p['label']
    task = tasks['trees']
    for p in task['patches'][::5]:
        boxes = np.asarray(task['boxes_xyxy_in_scene_px'][p['scene']])
        n = conv.box_centres_in(boxes, p['top'], p['left'], p['size'])
        assert n == p['count'] and conv.count_bin(n) == p['label']
    # every class present in both splits of every patch task
    for name, task in tasks.items():
        if task['kind'] == 'patch':
            for which in ('train', 'test'):
                assert min(task['balance'][which]) > 0, (name, which)


def test_configs_use_the_pool_statistics(manifest):
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO, 'projects', 'benchmarks', 'configs', '_base_', 'study_common.py'))
    assert cfg.pool_mean == manifest['pretrain']['mean_rgb']
    assert cfg.pool_std == manifest['pretrain']['std_rgb']


@pytest.mark.skipif(not osp.isdir(RS_REAL), reason=f'{RS_REAL} (source imagery) not here')
def test_converter_reproduces_the_committed_data(tmp_path):
    manifest = conv.make_study(RS_REAL, str(tmp_path))
    committed = json.load(open(osp.join(DATA, 'manifest.json')))
    assert manifest == committed
    for path in manifest['tasks'].values():
        assert json.load(open(tmp_path / path)) == json.load(open(osp.join(DATA, path)))
    assert (tmp_path / 'README.md').read_text() == open(osp.join(DATA, 'README.md')).read()
