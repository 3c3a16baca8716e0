"""Fine-tuning stage of the learning-signal study: whole-network fine-tunes on real labels.

    python projects/benchmarks/finetune.py --task seg_buildings --backbone B.pth --seed 0 \
        --work-dir work_dirs/finetune/seg_buildings/cmid_seed0
    python projects/benchmarks/finetune.py --task det_trees --seed 0 \
        --work-dir work_dirs/finetune/det_trees/random_seed0          # no --backbone: random init

From a ResNet-18 backbone file (``{'state_dict': {stock ResNet-18 keys, no prefix}}``, as the
study saves one per method and seed) or from the toolbox's own random init (``backbone=None``)
it fine-tunes, with one schedule for every initialisation,

* ``seg_buildings``: an mmseg semantic-FPN segmenter
  (``configs/finetune/seg_r18_spacenet-buildings.py``) on the SpaceNet Atlanta building
  footprints of the train zone of ``probes/building_dense.json``, at the input
  scale of the pretraining pool's SpaceNet tiles (native 0.5 m), random 256 px crops with flips,
  cross-entropy with class weights 1 / 5 (buildings are 4 % of the pixels); tested on the whole
  test zone: building IoU and
  pixel accuracy, plus per-block confusion counts (``SEG_BLOCK`` x ``SEG_BLOCK`` test pixels at
  the label resolution) whose sums give the metric, for a bootstrap over blocks;
* ``det_trees``: an mmdet Faster R-CNN + FPN (``configs/finetune/det_r18_neon-trees.py``) on the
  hand-drawn NEON tree boxes of the train zones of ``probes/trees.json``; tested on the test
  zones cut into tiles: AP at IoU 0.5 (``AP50``) and averaged over IoU 0.50:0.05:0.95 (``mAP``),
  VOC-style area AP from ``mmdet.evaluation.functional.eval_map``, plus every tile's detections
  and ground truth, for a bootstrap over tiles (:func:`ap50_of_tiles`).

The NEON scenes are stored at 30 cm (3x3 box averages of the 10 cm originals), where the tree
boxes are 3-36 px wide (median 13): the small ones cover one cell of ResNet's stride-4 map and
all are far below the 32 px smallest anchor of mmdet's Faster R-CNN. :func:`prepare_finetune_data`
upsamples the zones x``DET_UPSAMPLE`` = 2 (bilinear; 15 cm), so a tree is 6-72 px (median 26)
and the config's anchors start at 16 px. x3 (back to the 10 cm grid the boxes were drawn on)
costs 2.25x the compute per scene area, which the study's budget cannot pay, and moves the
input further from the 30 cm scale the backbones were pretrained at.

Training runs ``tools/train.py`` in a subprocess (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` =
``threads``, ``OMP_WAIT_POLICY=PASSIVE`` unless set, the rest of the environment inherited, e.g.
the study's kernel pins); the
evaluation runs in a second subprocess (this file with ``--evaluate``), in the same
environment. ``work_dir/result.json`` marks a finished run: calling again returns it without
training. The checkpoint is deleted after evaluation (logs and result kept). The same seed gives
the same result twice (checked: identical per-block counts).

Budget (the configs' defaults, measured on the 2-core study machine with 2 threads while another
2-thread training shared the cores): ``seg_buildings`` 0.86 s/iter, 100 iterations, 99 s per run
with evaluation; ``det_trees`` 0.94 s/iter, 100 iterations, 112 s. Random init (seed 0): building
IoU 0.26, tree AP50 0.22 (mAP 0.06): learnable, far from the ceiling.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.abspath(osp.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
from report_paths import portable_args  # noqa: E402
from run_log import loadavg, parse_times  # noqa: E402

FINETUNE_TASKS = ('seg_buildings', 'det_trees')
CONFIGS = {
    'seg_buildings': osp.join(HERE, 'configs', 'finetune', 'seg_r18_spacenet-buildings.py'),
    'det_trees': osp.join(HERE, 'configs', 'finetune', 'det_r18_neon-trees.py'),
}
DATA_VERSION = 1  # bump when prepare_finetune_data writes something else
SEG_BLOCK = 30  # bootstrap unit of seg_buildings: SEG_BLOCK x SEG_BLOCK test pixels (label res.)
DET_UPSAMPLE = 2  # 30 cm -> 15 cm, see the module docstring
DET_TILE = 128  # test tiles of det_trees: about DET_TILE x DET_TILE px at 30 cm (before upsampling)
AP_IOU_THRS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


# --- data ------------------------------------------------------------------------------------
def _read_json(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: data_root must be the rs_study data '
                                'folder (data/rs_study, made by make_rs_study.py)')
    with open(path) as f:
        return json.load(f)


def _load_rgb(path: str) -> np.ndarray:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist (named by the task json)')
    img = np.asarray(Image.open(path))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _save_png(arr: np.ndarray, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


def _upsample(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * factor, h * factor), Image.BILINEAR))


def zone_rect(split: dict, which: str, shape) -> tuple:
    """(top, left, bottom, right) in scene px of the ``which`` zone of a ``splits`` entry."""
    lo, hi = split[which]
    if split['axis'] == 'x':
        return 0, lo, shape[0], hi
    if split['axis'] == 'y':
        return lo, 0, hi, shape[1]
    raise ValueError(f"split axis {split['axis']!r} is neither 'x' nor 'y'")


def boxes_in_rect(boxes: np.ndarray, rect) -> tuple:
    """Boxes (x1, y1, x2, y2) whose centre lies in ``rect`` = (top, left, bottom, right)
    (half-open), clipped to it: (indices, clipped boxes)."""
    top, left, bottom, right = rect
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    keep = np.flatnonzero((cx >= left) & (cx < right) & (cy >= top) & (cy < bottom))
    clipped = boxes[keep].copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(left, right)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(top, bottom)
    return keep, clipped


def _coco(images: List[dict], boxes: List[np.ndarray]) -> dict:
    anns = []
    for img, bxs in zip(images, boxes):
        for b in bxs:
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            if w < 1 or h < 1:  # mmdet's CocoDataset would drop it silently
                raise ValueError(f"box {b.tolist()} of {img['file_name']} is under 1 px after "
                                 'clipping to its zone / tile')
            anns.append(dict(id=len(anns) + 1, image_id=img['id'], category_id=1, iscrowd=0,
                             bbox=[float(b[0]), float(b[1]), w, h], area=w * h))
    return dict(images=images, annotations=anns,
                categories=[dict(id=1, name='tree', supercategory='tree')])


def _prepare_seg(data_root: str, out_dir: str) -> dict:
    task = _read_json(osp.join(data_root, 'probes', 'building_dense.json'))
    info = dict(zones={}, files={})
    for which in ('train', 'test'):
        zone = task['zones'][which]
        scene = task['scenes'][zone['scene']]
        img = _load_rgb(osp.join(data_root, 'probes', scene['image']))
        mask_path = osp.join(data_root, 'probes', scene['mask'])
        mask = np.asarray(Image.open(mask_path))
        if mask.ndim != 2 or not set(np.unique(mask).tolist()) <= {0, 1}:
            raise ValueError(f'{mask_path}: expected a single-channel 0/1 building mask, got '
                             f'shape {mask.shape} with values {np.unique(mask)[:10].tolist()}')
        sl = (slice(zone['top'], zone['top'] + zone['height']),
              slice(zone['left'], zone['left'] + zone['width']))
        name = f"{zone['scene']}.png"
        paths = dict(img=osp.join(out_dir, 'seg', 'img_dir', which, name),
                     ann=osp.join(out_dir, 'seg', 'ann_dir', which, name))
        _save_png(img[sl], paths['img'])
        _save_png(mask[sl].astype(np.uint8), paths['ann'])
        info['zones'][which] = dict(zone)
        info['files'][which] = paths
    return info


def _prepare_det(data_root: str, out_dir: str) -> dict:
    task = _read_json(osp.join(data_root, 'probes', 'trees.json'))
    images = dict(train=[], test=[])
    boxes = dict(train=[], test=[])
    for scene_name in sorted(task['splits']):
        split = task['splits'][scene_name]
        scene = task['scenes'][scene_name]
        img = _load_rgb(osp.join(data_root, 'probes', scene['image']))
        all_boxes = task['boxes_xyxy_in_scene_px'][scene_name]
        for which in ('train', 'test'):
            rect = zone_rect(split, which, img.shape)
            top, left, bottom, right = rect
            # the zone is cut before upsampling: no pixel across the gap enters the filter
            zone_up = _upsample(img[top:bottom, left:right], DET_UPSAMPLE)
            if which == 'train':
                tiles = [(0, 0, bottom - top, right - left, scene_name)]
            else:  # a grid of about DET_TILE px tiles (in 30 cm px of the zone)
                ny = max(1, round((bottom - top) / DET_TILE))
                nx = max(1, round((right - left) / DET_TILE))
                ys = np.linspace(0, bottom - top, ny + 1).round().astype(int)
                xs = np.linspace(0, right - left, nx + 1).round().astype(int)
                tiles = [(ys[i], xs[j], ys[i + 1], xs[j + 1], f'{scene_name}_r{i}_c{j}')
                         for i in range(ny) for j in range(nx)]
            for t, l, b, r, stem in tiles:
                abs_rect = (top + t, left + l, top + b, left + r)
                _, clipped = boxes_in_rect(all_boxes, abs_rect)
                clipped = (clipped - np.array([abs_rect[1], abs_rect[0]] * 2)) * DET_UPSAMPLE
                u = DET_UPSAMPLE
                tile = zone_up[t * u:b * u, l * u:r * u]
                file_name = f'{stem}.png'
                _save_png(np.ascontiguousarray(tile), osp.join(out_dir, 'det', which, file_name))
                images[which].append(dict(
                    id=len(images[which]) + 1, file_name=file_name, height=int(tile.shape[0]),
                    width=int(tile.shape[1]), scene=scene_name,
                    rect_tlbr_in_scene_px=[int(v) for v in abs_rect]))
                boxes[which].append(clipped)
    info = dict(upsample=DET_UPSAMPLE, files={})
    for which in ('train', 'test'):
        path = osp.join(out_dir, 'det', f'{which}.json')
        with open(path, 'w') as f:
            json.dump(_coco(images[which], boxes[which]), f, indent=1)
        info['files'][which] = dict(ann=path, img_dir=osp.join(out_dir, 'det', which))
    return info


def prepare_finetune_data(data_root: str, out_dir: str) -> dict:
    """Write the fine-tuning data of both tasks under ``out_dir`` (deterministic; a second call
    with everything in place only reads the manifest) and return the paths.

    * ``seg/img_dir/{train,test}/building.png`` (RGB: the pan band replicated) and
      ``seg/ann_dir/{train,test}/building.png`` (0 background / 1 building): the zones of
      ``probes/building_dense.json``;
    * ``det/train/<scene>.png``: each scene's train zone upsampled x``DET_UPSAMPLE``;
      ``det/test/<scene>_r<i>_c<j>.png``: the test zones, upsampled, cut into tiles;
      ``det/{train,test}.json``: COCO boxes (class ``tree``) whose centre lies in the zone /
      tile, clipped to it.
    """
    manifest_path = osp.join(out_dir, 'finetune_data.json')
    if osp.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get('version') == DATA_VERSION and all(
                osp.exists(p) for p in _paths_of(manifest)):
            return manifest
    os.makedirs(out_dir, exist_ok=True)
    manifest = dict(version=DATA_VERSION, data_root=osp.abspath(data_root),
                    out_dir=osp.abspath(out_dir), seg=_prepare_seg(data_root, out_dir),
                    det=_prepare_det(data_root, out_dir))
    tmp = manifest_path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, manifest_path)
    return manifest


def _paths_of(manifest: dict) -> List[str]:
    out = []
    for task in ('seg', 'det'):
        for files in manifest.get(task, {}).get('files', {}).values():
            out += list(files.values())
    return out or ['<no paths>']


# --- metrics ---------------------------------------------------------------------------------
def seg_metrics(tp: float, fp: float, fn: float, tn: float) -> dict:
    """Building IoU, pixel accuracy, background IoU, mIoU and balanced accuracy from counts."""
    iou = tp / max(tp + fp + fn, 1)
    iou_bg = tn / max(tn + fn + fp, 1)
    rec1, rec0 = tp / max(tp + fn, 1), tn / max(tn + fp, 1)
    return dict(iou=iou, acc=(tp + tn) / max(tp + fp + fn + tn, 1), iou_background=iou_bg,
                miou=(iou + iou_bg) / 2, bacc=(rec1 + rec0) / 2)


def _eval_map_inputs(tiles: Sequence[dict], merge: bool):
    """eval_map's inputs: one image per tile, or (``merge``) all tiles side by side in one
    image, each shifted right past the previous ones, so no box of one tile overlaps a box of
    another and the matching is the per-tile one (eval_map starts a process pool for every
    call with more than one image: ~0.5 s, too slow for a bootstrap)."""
    dets = [np.asarray(t['dets'], dtype=np.float64).reshape(-1, 5) for t in tiles]
    gts = [np.asarray(t['gts'], dtype=np.float64).reshape(-1, 4) for t in tiles]
    if merge:
        extent = max([float(np.abs(a[:, :4]).max()) for a in dets + gts if len(a)] or [0.])
        step = 2 * extent + 1000.
        dets = [d + np.array([i * step, 0, i * step, 0, 0]) for i, d in enumerate(dets)]
        gts = [g + np.array([i * step, 0, i * step, 0]) for i, g in enumerate(gts)]
        dets, gts = [np.concatenate(dets)], [np.concatenate(gts)]
    anns = [dict(bboxes=g, labels=np.zeros(len(g), dtype=np.int64)) for g in gts]
    return [[d] for d in dets], anns


def ap_of_tiles(tiles: Sequence[dict], iou_thr: float = 0.5, merge: bool = True) -> float:
    """Class 'tree' AP (VOC-style area under the precision-recall curve) over ``tiles``
    (``{'dets': [[x1, y1, x2, y2, score], ...], 'gts': [[x1, y1, x2, y2], ...]}``; a tile may
    repeat, as in a bootstrap resample) by ``mmdet.evaluation.functional.eval_map``.
    ``merge=False`` passes one image per tile (the same value, ~100x slower)."""
    from mmdet.evaluation.functional import eval_map
    if not tiles:
        raise ValueError('ap_of_tiles needs at least one tile')
    dets, anns = _eval_map_inputs(tiles, merge)
    mean_ap, _ = eval_map(dets, anns, iou_thr=iou_thr, logger='silent', nproc=1)
    return float(mean_ap)


def ap50_of_tiles(tiles: Sequence[dict]) -> float:
    """AP at IoU 0.5 over ``tiles`` (see :func:`ap_of_tiles`): the ``AP50`` of a det run."""
    return ap_of_tiles(tiles, 0.5)


def det_metrics(tiles: Sequence[dict]) -> dict:
    """AP50, AP75 and mAP (the mean AP over IoU 0.50:0.05:0.95) over ``tiles``."""
    aps = [ap_of_tiles(tiles, t) for t in AP_IOU_THRS]
    return dict(mAP=float(np.mean(aps)), AP50=ap50_of_tiles(tiles),
                AP75=aps[AP_IOU_THRS.index(0.75)],
                num_gts=int(sum(len(t['gts']) for t in tiles)),
                num_dets=int(sum(len(t['dets']) for t in tiles)))


# --- evaluation (runs in its own process: python finetune.py --evaluate ...) -------------------
def _checkpoint_of(work_dir: str) -> str:
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        path = open(marker).read().strip()
        if osp.isfile(path):
            return path
    found = sorted(glob.glob(osp.join(work_dir, 'iter_*.pth')),
                   key=lambda p: int(osp.basename(p)[5:-4]))
    if not found:
        raise FileNotFoundError(f'no checkpoint (iter_*.pth) in {work_dir}: did training finish?')
    return found[-1]


def _dumped_config(task: str, work_dir: str) -> str:
    path = osp.join(work_dir, osp.basename(CONFIGS[task]))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} (the config tools/train.py dumps) does not exist')
    return path


def evaluate(task: str, work_dir: str) -> dict:
    """Evaluate the final checkpoint of ``work_dir`` on the task's test split."""
    import torch
    import cmid_mm  # noqa: F401  (safe loading of Runner checkpoints)
    from mmengine.dataset import pseudo_collate

    cfg_path, ckpt = _dumped_config(task, work_dir), _checkpoint_of(work_dir)
    if task == 'seg_buildings':
        from mmseg.apis import init_model
        from mmseg.registry import DATASETS
        model = init_model(cfg_path, ckpt, device='cpu')
    else:
        from mmdet.apis import init_detector
        from mmdet.registry import DATASETS
        model = init_detector(cfg_path, ckpt, device='cpu')
    dataset = DATASETS.build(model.cfg.test_dataloader.dataset)
    start = time.time()
    outs = []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            outs.append((item, model.test_step(pseudo_collate([item]))[0]))
    infer_s = time.time() - start

    if task == 'seg_buildings':
        if len(outs) != 1:
            raise ValueError(f'seg_buildings expects one test image (the test zone), got '
                             f'{len(outs)}')
        sample = outs[0][1]
        pred = sample.pred_sem_seg.data[0].cpu().numpy()
        label = np.asarray(Image.open(sample.seg_map_path))
        from cmid_mm.evaluation.probes import block_confusion
        units = block_confusion(torch.from_numpy(pred.astype(np.int64)),
                                torch.from_numpy(label.astype(np.int64)), SEG_BLOCK)
        totals = {k: sum(v) for k, v in units.items()}
        metrics = seg_metrics(**totals)
        # second opinion: mmseg's own IoU computation on the same prediction
        from mmseg.evaluation import IoUMetric
        inter, union, _, _ = IoUMetric.intersect_and_union(
            torch.from_numpy(pred), torch.from_numpy(label.astype(np.int64)), 2, 255)
        metrics['iou_mmseg'] = float(inter[1] / union[1])
        metrics.update({k: int(v) for k, v in totals.items()})
        h, w = label.shape
        return dict(metrics=metrics, units=units,
                    unit=f'block of {SEG_BLOCK}x{SEG_BLOCK} test pixels (label resolution, '
                         'row-major; edge blocks smaller)',
                    block_grid=[-(-h // SEG_BLOCK), -(-w // SEG_BLOCK)],
                    test_shape=[h, w], infer_s=round(infer_s, 2))

    coco = json.load(open(model.cfg.test_dataloader.dataset.ann_file
                          if osp.isabs(model.cfg.test_dataloader.dataset.ann_file) else
                          osp.join(model.cfg.test_dataloader.dataset.data_root,
                                   model.cfg.test_dataloader.dataset.ann_file)))
    gts_of = {im['file_name']: [] for im in coco['images']}
    name_of = {im['id']: im['file_name'] for im in coco['images']}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        gts_of[name_of[a['image_id']]].append([x, y, x + w, y + h])
    tiles = []
    for _, sample in outs:
        inst = sample.pred_instances
        dets = torch.cat([inst.bboxes, inst.scores[:, None]], dim=1).cpu().numpy()
        name = osp.basename(sample.img_path)
        tiles.append(dict(tile=name, dets=dets.astype(np.float64).tolist(), gts=gts_of[name]))
    return dict(metrics=det_metrics(tiles), units=dict(tiles=tiles),
                unit=f'test tile (about {DET_TILE * DET_UPSAMPLE} px square, '
                     f'{len(tiles)} tiles)', infer_s=round(infer_s, 2))


# --- runs ------------------------------------------------------------------------------------
def _pretrained_check(log: str) -> str:
    """The PretrainedLoadCheckHook's verdict (of the last attempt) from the training log."""
    lines = open(log, errors='replace').read().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if 'pretrained weights of' in lines[i] and i + 1 < len(lines):
            return lines[i + 1].strip()
        if 'no module has a Pretrained init_cfg' in lines[i]:
            return 'no Pretrained init_cfg (random init)'
    return 'no verdict of PretrainedLoadCheckHook in the log'


def _run_logged(cmd: List[str], env: dict, log: str, what: str) -> tuple:
    """Run ``cmd`` with its output appended to ``log``; (wall-clock s, CPU s of the process).
    CPU s / threads estimates the wall-clock on a quiet machine (a shared machine's load makes
    the wall-clock longer, not the CPU time, up to the threads' synchronisation)."""
    import resource
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(shlex.quote(c) for c in cmd)}\n')
        f.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.time() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        tail = ''.join(open(log, errors='replace').readlines()[-30:])
        raise RuntimeError(f'{what} failed (exit {proc.returncode}); log {log}:\n{tail}')
    return wall, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def train_command(task: str, backbone: Optional[str], seed: int, work_dir: str, data_dir: str,
                  iters: Optional[int] = None) -> List[str]:
    opts = [f'randomness.seed={seed}',
            f'train_dataloader.dataset.data_root={osp.abspath(data_dir)}',
            f'test_dataloader.dataset.data_root={osp.abspath(data_dir)}']
    if backbone is not None:
        opts += ['model.backbone.init_cfg.type=Pretrained',
                 f'model.backbone.init_cfg.checkpoint={osp.abspath(backbone)}']
    if iters is not None:
        if iters < 1:
            raise ValueError(f'iters={iters}: need at least one iteration')
        warmup = max(1, iters // 10)
        # the config's 10 % linear warm-up, then cosine to the end, rescaled to ``iters``
        opts += [f'train_cfg.max_iters={iters}', f'param_scheduler.0.end={warmup}',
                 f'param_scheduler.1.begin={warmup}',
                 f'param_scheduler.1.end={max(iters, warmup + 1)}']
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIGS[task],
            '--work-dir', osp.abspath(work_dir), '--cfg-options'] + opts


def run_finetune(task: str, backbone: Optional[str], seed: int, work_dir: str, data_dir: str,
                 threads: int = 2, iters: Optional[int] = None) -> dict:
    """Fine-tune ``task`` from ``backbone`` (None: random init under ``seed``), evaluate on the
    test split, write and return ``work_dir/result.json`` (returned as is if it exists)."""
    if task not in FINETUNE_TASKS:
        raise ValueError(f'task {task!r} is not one of {FINETUNE_TASKS}')
    result_path = osp.join(work_dir, 'result.json')
    if osp.isfile(result_path):
        with open(result_path) as f:
            return json.load(f)
    if backbone is not None and not osp.isfile(backbone):
        raise FileNotFoundError(f'backbone file {backbone!r} does not exist')
    manifest = osp.join(data_dir, 'finetune_data.json')
    if not osp.isfile(manifest):
        raise FileNotFoundError(f'{manifest} does not exist: run prepare_finetune_data(data_root, '
                                f'{data_dir!r}) first')
    os.makedirs(work_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # idle OpenMP threads sleep instead of spinning, as in the study's pretraining runs (the
    # same bits; spinning threads of two jobs sharing the cores slow both several times)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    cmd = train_command(task, backbone, seed, work_dir, data_dir, iters)
    log = osp.join(work_dir, 'train.log')
    load_before = loadavg()
    train_s, train_cpu = _run_logged(cmd, env, log, f'fine-tuning {task} seed {seed}')
    check = _pretrained_check(log)
    eval_json = osp.join(work_dir, 'eval.json')
    eval_cmd = [sys.executable, osp.abspath(__file__), '--evaluate', '--task', task,
                '--work-dir', osp.abspath(work_dir)]
    eval_s, eval_cpu = _run_logged(eval_cmd, env, osp.join(work_dir, 'eval.log'),
                         f'evaluating {task} seed {seed}')
    with open(eval_json) as f:
        res = json.load(f)
    timing = parse_times(work_dir)
    timing.update(wall_clock_s=round(train_s + eval_s, 2), train_wall_s=round(train_s, 2),
                  eval_wall_s=round(eval_s, 2), train_cpu_s=round(train_cpu, 2),
                  eval_cpu_s=round(eval_cpu, 2), loadavg_before=load_before,
                  loadavg_after=loadavg(),
                  infer_s=res.pop('infer_s', None), threads=threads,
                  omp_wait_policy=env['OMP_WAIT_POLICY'])
    result = dict(task=task, seed=seed, iters=iters or timing['logged_iters'],
                  pretrained_check=check,
                  backbone=portable_args([osp.abspath(backbone)])[0] if backbone else None,
                  **res, timing=timing, command=portable_args(cmd))
    tmp = result_path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f)
    os.replace(tmp, result_path)
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        os.remove(path)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        os.remove(osp.join(work_dir, 'last_checkpoint'))
    os.remove(eval_json)
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--task', choices=FINETUNE_TASKS, required=True)
    p.add_argument('--backbone', help='ResNet-18 weights file; omit for the random init')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', required=True)
    p.add_argument('--data-root', default=osp.join(REPO, 'data', 'rs_study'),
                   help='the rs_study data folder')
    p.add_argument('--data-dir', default=osp.join(REPO, 'work_dirs', 'finetune_data'),
                   help='where prepare_finetune_data writes the fine-tuning data')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--iters', type=int, help='training iterations (default: the config)')
    p.add_argument('--evaluate', action='store_true',
                   help='internal: evaluate the checkpoint in --work-dir, write eval.json')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.evaluate:
        res = evaluate(args.task, args.work_dir)
        with open(osp.join(args.work_dir, 'eval.json'), 'w') as f:
            json.dump(res, f)
        print(json.dumps(res['metrics']))
        return
    prepare_finetune_data(args.data_root, args.data_dir)
    res = run_finetune(args.task, args.backbone, args.seed, args.work_dir, args.data_dir,
                       args.threads, args.iters)
    print(json.dumps(dict(metrics=res['metrics'], timing=res['timing'],
                          pretrained_check=res['pretrained_check']), indent=1))


if __name__ == '__main__':
    main()
