"""Fine-tuning stage of the learning-signal study (projects/benchmarks/finetune.py): the data it
writes from data/rs_study, the metrics and their bootstrap units, and real 2-iteration runs of
tools/train.py for both tasks from a saved ResNet-18 file."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DATA = osp.join(REPO, 'data', 'rs_study')
ft = load_tool('projects/benchmarks/finetune.py', 'finetune')


def _json(name):
    with open(osp.join(DATA, 'probes', name)) as f:
        return json.load(f)


def _rgb(path):
    img = np.asarray(Image.open(path))
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('ftdata'))
    ft.prepare_finetune_data(DATA, out)
    return out


def test_seg_files_are_the_zones(data_dir):
    task = _json('building_dense.json')
    scene = _rgb(osp.join(DATA, 'probes', task['scenes']['building']['image']))
    mask = np.asarray(Image.open(osp.join(DATA, 'probes', task['scenes']['building']['mask'])))
    for which in ('train', 'test'):
        z = task['zones'][which]
        img = np.asarray(Image.open(osp.join(data_dir, 'seg', 'img_dir', which, 'building.png')))
        ann = np.asarray(Image.open(osp.join(data_dir, 'seg', 'ann_dir', which, 'building.png')))
        assert img.shape == (z['height'], z['width'], 3)
        assert ann.shape == (z['height'], z['width'])
        sl = (slice(z['top'], z['top'] + z['height']), slice(z['left'], z['left'] + z['width']))
        assert np.array_equal(img, scene[sl]) and np.array_equal(ann, mask[sl])
        assert set(np.unique(ann).tolist()) == {0, 1}  # 0 background / 1 building


def _independent_counts(task):
    """Boxes whose centre is in each scene's zone, counted straight from trees.json."""
    counts = {}
    for name, split in task['splits'].items():
        for which in ('train', 'test'):
            lo, hi = split[which]
            n = 0
            for x1, y1, x2, y2 in task['boxes_xyxy_in_scene_px'][name]:
                c = (x1 + x2) / 2 if split['axis'] == 'x' else (y1 + y2) / 2
                n += lo <= c < hi
            counts[name, which] = n
    return counts


def test_det_coco_boxes_counts_and_images(data_dir):
    task = _json('trees.json')
    counts = _independent_counts(task)
    up = ft.DET_UPSAMPLE
    for which in ('train', 'test'):
        coco = json.load(open(osp.join(data_dir, 'det', f'{which}.json')))
        per_scene = {name: 0 for name in task['splits']}
        by_img = {im['id']: im for im in coco['images']}
        for a in coco['annotations']:
            im = by_img[a['image_id']]
            x, y, w, h = a['bbox']
            assert w >= 1 and h >= 1
            assert 0 <= x and x + w <= im['width'] and 0 <= y and y + h <= im['height']
            per_scene[im['scene']] += 1
        assert per_scene == {n: counts[n, which] for n in task['splits']}, which
        for im in coco['images']:
            arr = np.asarray(Image.open(osp.join(data_dir, 'det', which, im['file_name'])))
            t, l, b, r = im['rect_tlbr_in_scene_px']
            assert arr.shape == ((b - t) * up, (r - l) * up, 3) == (im['height'], im['width'], 3)
            split = task['splits'][im['scene']]
            lo, hi = split[which]
            along = (l, r) if split['axis'] == 'x' else (t, b)
            assert lo <= along[0] < along[1] <= hi  # inside its zone
    test = json.load(open(osp.join(data_dir, 'det', 'test.json')))
    assert 16 <= len(test['images']) <= 30  # bootstrap units
    assert sum(counts[n, 'train'] for n in task['splits']) > 300  # the real boxes, not a stub


def test_no_test_zone_pixel_reaches_a_train_file(data_dir, tmp_path):
    """Rebuild from a copy of the data whose test zones and gaps are noise: every train file is
    byte-identical, every test file changes."""
    root = tmp_path / 'rs_study'
    shutil.copytree(osp.join(DATA, 'probes'), root / 'probes')
    rng = np.random.default_rng(0)
    for name in ('building_dense.json', 'trees.json'):
        task = _json(name)
        for scene_name, split in task['splits'].items():
            for key in ('image', 'mask'):
                rel = task['scenes'][scene_name].get(key)
                if rel is None:
                    continue
                path = root / 'probes' / rel
                arr = np.array(Image.open(path))
                lo = split['gap'][0]
                sl = (slice(None), slice(lo, None)) if split['axis'] == 'x' else \
                    (slice(lo, None), )
                arr[sl] = rng.integers(0, 2 if key == 'mask' else 256, arr[sl].shape)
                Image.fromarray(arr).save(path)
    out = tmp_path / 'out'
    ft.prepare_finetune_data(str(root), str(out))
    for sub in ('seg/img_dir', 'seg/ann_dir', 'det'):
        for which in ('train', 'test'):
            d = osp.join(data_dir, sub, which)
            for f in sorted(os.listdir(d)):
                same = open(osp.join(d, f), 'rb').read() == \
                    open(osp.join(out, sub, which, f), 'rb').read()
                assert same == (which == 'train'), (sub, which, f)


def test_prepare_is_idempotent_and_deterministic(data_dir, tmp_path):
    manifest = osp.join(data_dir, 'finetune_data.json')
    before = os.stat(manifest).st_mtime_ns
    first = json.load(open(manifest))
    assert ft.prepare_finetune_data(DATA, data_dir) == first  # everything in place: no rewrite
    assert os.stat(manifest).st_mtime_ns == before
    ft.prepare_finetune_data(DATA, str(tmp_path))  # elsewhere: the same bytes
    for rel in ('det/train.json', 'det/test.json', 'det/train/neon528.png',
                'seg/ann_dir/test/building.png', 'seg/img_dir/train/building.png'):
        assert open(osp.join(data_dir, rel), 'rb').read() == \
            open(osp.join(tmp_path, rel), 'rb').read(), rel


def test_boxes_in_rect_centre_rule_and_clip():
    boxes = [[0, 0, 4, 4], [3, 3, 9, 5], [8, 0, 12, 2]]  # centres (2, 2), (6, 4), (10, 1)
    keep, clipped = ft.boxes_in_rect(boxes, (0, 0, 10, 8))  # x in [0, 8): (10, 1) is out
    assert keep.tolist() == [0, 1]
    assert clipped.tolist() == [[0, 0, 4, 4], [3, 3, 8, 5]]


def test_ap_of_tiles_known_value_and_resampling():
    # gts A, B; dets by score: A (TP), a false positive, B (TP):
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> area AP = 0.5 * 1 + 0.5 * 2/3
    tile = dict(dets=[[0, 0, 10, 10, .9], [50, 50, 60, 60, .8], [20, 20, 30, 30, .7]],
                gts=[[0, 0, 10, 10], [20, 20, 30, 30]])
    assert ft.ap50_of_tiles([tile]) == pytest.approx(0.5 + 1 / 3, abs=1e-6)
    empty = dict(dets=[[0, 0, 5, 5, .95]], gts=[])  # a tile with only a false positive
    # the top false positive now comes first: precision 0, 1/2, 1/3, 1/2 at recall 0, .5, .5, 1
    assert ft.ap50_of_tiles([tile, empty]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5, abs=1e-6)
    # a resample that draws the tile twice: 4 gts, TP FP TP per copy, ties broken stably
    assert 0 < ft.ap50_of_tiles([tile, tile]) <= 1
    assert ft.det_metrics([tile])['AP50'] == ft.ap50_of_tiles([tile])


def test_merged_ap_equals_eval_map_per_tile():
    """ap_of_tiles puts the tiles side by side in one eval_map image (no process pool): the
    same value as one image per tile, on random tiles with repeats and empty tiles."""
    rng = np.random.default_rng(0)
    tiles = []
    for i in range(12):
        xy = rng.uniform(0, 200, (15, 2))
        gts = np.c_[xy, xy + rng.uniform(6, 40, (15, 2))]
        near = gts + rng.normal(0, 2, gts.shape)
        dets = np.r_[near, np.c_[xy[:5] + 100, xy[:5] + 120]]
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
        dets = np.c_[dets, rng.random(len(dets))]
        tiles.append(dict(dets=dets.tolist(), gts=gts.tolist() if i % 4 else []))
    for draw in (range(12), rng.integers(0, 12, 12)):
        sample = [tiles[i] for i in draw]
        for thr in (0.5, 0.75):
            merged = ft.ap_of_tiles(sample, thr)
            assert 0.01 < merged < 0.99
            assert merged == pytest.approx(ft.ap_of_tiles(sample, thr, merge=False), abs=1e-9)


def _save_resnet18(path, seed=0, rename=None):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    model = MODELS.build(dict(type='ResNet', depth=18))
    model.init_weights()
    state = model.state_dict()
    if rename:
        state[rename[1]] = state.pop(rename[0])
    torch.save({'state_dict': state}, path)
    return state


@pytest.fixture(scope='module')
def backbone(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('bb') / 'r18.pth')
    _save_resnet18(path)
    return path


def _check_schema(res, work_dir):
    assert 'loaded 1' in res['pretrained_check'] and res['pretrained_check'].endswith('OK')
    assert 'missing 0 | not loaded 0' in res['pretrained_check']
    t = res['timing']
    assert t['logged_iters'] == 2 and t['s_per_iter_median'] > 0
    assert t['wall_clock_s'] >= t['train_wall_s'] > 0
    assert res['command'][1] == 'tools/train.py' and 'train_cfg.max_iters=2' in res['command']
    assert not [f for f in os.listdir(work_dir) if f.endswith('.pth')]  # checkpoint deleted
    assert json.load(open(osp.join(work_dir, 'result.json'))) == res
    json.dumps(res)


def test_run_finetune_seg(backbone, data_dir, tmp_path):
    work = str(tmp_path / 'seg')
    res = ft.run_finetune('seg_buildings', backbone, 0, work, data_dir, threads=2, iters=2)
    _check_schema(res, work)
    m, u = res['metrics'], res['units']
    task = _json('building_dense.json')['zones']['test']
    assert len(u['tp']) == -(-task['height'] // ft.SEG_BLOCK) * -(-task['width'] // ft.SEG_BLOCK)
    tp, fp, fn, tn = (sum(u[k]) for k in ('tp', 'fp', 'fn', 'tn'))
    assert tp + fp + fn + tn == task['height'] * task['width']
    assert (tp, fp, fn, tn) == (m['tp'], m['fp'], m['fn'], m['tn'])
    assert tp + fn == int(np.asarray(Image.open(
        osp.join(data_dir, 'seg', 'ann_dir', 'test', 'building.png'))).sum())
    assert m['iou'] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    assert m['iou'] == pytest.approx(m['iou_mmseg'], abs=1e-6)  # mmseg's own IoU agrees
    assert m['acc'] == pytest.approx((tp + tn) / (tp + fp + fn + tn), abs=1e-12)
    # resumable: a second call returns the stored result without training
    os.remove(osp.join(work, 'train.log'))
    assert ft.run_finetune('seg_buildings', backbone, 0, work, data_dir, iters=2) == res
    assert not osp.exists(osp.join(work, 'train.log'))


def test_run_finetune_det(backbone, data_dir, tmp_path):
    work = str(tmp_path / 'det')
    res = ft.run_finetune('det_trees', backbone, 1, work, data_dir, threads=2, iters=2)
    _check_schema(res, work)
    tiles = res['units']['tiles']
    test = json.load(open(osp.join(data_dir, 'det', 'test.json')))
    assert len(tiles) == len(test['images'])
    assert sum(len(t['gts']) for t in tiles) == len(test['annotations'])
    assert ft.ap50_of_tiles(tiles) == pytest.approx(res['metrics']['AP50'], abs=1e-12)
    assert ft.ap_of_tiles(tiles, merge=False) == pytest.approx(res['metrics']['AP50'], abs=1e-9)
    assert 0 <= res['metrics']['mAP'] <= res['metrics']['AP50'] <= 1


def test_wrong_backbone_key_stops_with_the_name(data_dir, tmp_path):
    path = str(tmp_path / 'bad.pth')
    _save_resnet18(path, rename=('layer1.0.conv1.weight', 'layer1.0.convX.weight'))
    with pytest.raises(RuntimeError) as e:
        ft.run_finetune('seg_buildings', path, 0, str(tmp_path / 'w'), data_dir, iters=2)
    msg = str(e.value)
    assert 'layer1.0.conv1.weight' in msg and 'did not load its pretrained weights' in msg
    assert not osp.exists(tmp_path / 'w' / 'result.json')


def test_bad_arguments_are_named(data_dir, tmp_path):
    with pytest.raises(ValueError, match='seg_roads'):
        ft.run_finetune('seg_roads', None, 0, str(tmp_path), data_dir)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        ft.run_finetune('det_trees', str(tmp_path / 'nope.pth'), 0, str(tmp_path), data_dir)
    with pytest.raises(FileNotFoundError, match='prepare_finetune_data'):
        ft.run_finetune('det_trees', None, 0, str(tmp_path / 'w'), str(tmp_path / 'empty'))
