"""Learning signal on real imagery: pretrain each method on equal budgets, probe frozen features,
fine-tune through mmseg / mmdet, and report every conclusion with its interval.

    python projects/benchmarks/learning_signal_study.py --pin-kernels

For every seed (default 0-4) and method (``projects/benchmarks/configs/<method>.py``; default
random, cmid, mocov2, byol, simmim) it pretrains a ResNet-18 on the ``data/rs_study`` pool with
``tools/train.py`` in a subprocess (same pool, batch, optimizer, iteration budget; checkpoints at
k/4 of the budget), then probes the FROZEN student backbone of every checkpoint, and the random
initialisation of the seed (iteration 0), on the spatially split tasks of ``data/rs_study``
(make_rs_study.py):

* patch tasks (``building``, ``road``, ``trees``, ``s2_landcover``): each patch resized to the
  model input (96 px), global average pool of the last stage (512-d); weighted k-NN (cosine,
  k=20, T=0.07, DINO's protocol) and a linear probe (multinomial logistic regression on
  standardised features, class-balanced loss, L2 chosen by 3-fold cross-validation over
  spatial bands of the training split only);
* ``building_dense``: each zone of the SpaceNet tile passed whole through the backbone
  (resized by 1.5, the scale of the building patches); the LAST-stage map (stride 32) is
  bilinearly interpolated to pixel positions; a per-pixel linear probe (same recipe) is trained
  on a regular grid of train-zone pixels (every 6th row and column) and scored on every
  test-zone pixel: IoU of the building class, pixel accuracy, balanced accuracy.
* baselines computed once: the mean RGB of each patch (k-NN in Euclidean distance on
  standardised values, and the linear probe) and, for the dense task, the pixel's own value.

The final backbones of the ``--finetune-seeds`` (and the toolboxes' random init) are then
fine-tuned by ``finetune.py`` (SpaceNet buildings through mmseg, NEON trees through mmdet).
Every probe and fine-tune keeps its per-unit predictions, so ``study_report.py`` can bootstrap
over seeds and test units.

State: one JSON record per finished run in ``--records`` (default ``<out>/runs``); a rerun
skips what is recorded (resume a long study by running the same command again, also on another
machine once the records are committed). Output in ``--out``: ``results.json``, ``results.md``,
``probe_vs_iters.png``. Checkpoints are deleted once probed unless ``--keep-checkpoints``; the
final backbone of every run stays in its work dir for fine-tuning.
"""
import argparse
import datetime
import glob
import json
import math
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from cmid_mm.utils.machine import machine_info  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from report_paths import portable_args  # noqa: E402
from run_log import loadavg, parse_times  # noqa: E402
from study_report import DENSE_TASK, PATCH_TASKS  # noqa: E402

ALL_METHODS = ('random', 'cmid', 'cmid_mim-only', 'cmid_global-only', 'cmid_local-only',
               'cmid_no-ffl', 'mocov2', 'byol', 'simmim')
# the study's design (docs/learning_signal.md): CMID against the baselines; the ablations run
# on request (--methods)
DEFAULT_METHODS = ('random', 'cmid', 'mocov2', 'byol', 'simmim')
CMID_METHODS = tuple(m for m in ALL_METHODS if m.startswith('cmid'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=240,
                        help='pretraining iterations per method and seed (rounded up to a '
                        'multiple of --checkpoints)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS),
                        choices=list(ALL_METHODS))
    parser.add_argument('--work-dir', default='work_dirs/study',
                        help='training runs: logs, checkpoints, the final backbones')
    parser.add_argument('--out', default='docs/learning_signal')
    parser.add_argument('--records', default=None,
                        help='one JSON per finished run (default <out>/runs): the study\'s '
                        'state; a rerun skips what is recorded, so commit it to carry a long '
                        'study across machines')
    parser.add_argument('--data', default='data/rs_study', help='made by make_rs_study.py')
    parser.add_argument('--config-dir', default='projects/benchmarks/configs')
    parser.add_argument('--checkpoints', type=int, default=4,
                        help='checkpoints at k/N of the budget, k = 1..N')
    parser.add_argument('--threads', type=int, default=2,
                        help='OMP threads of the training subprocess and of the probes')
    parser.add_argument('--num-workers', type=int, default=1, help='data-loader workers')
    parser.add_argument('--k', type=int, default=20, help='k-NN neighbours')
    parser.add_argument('--temperature', type=float, default=0.07, help='k-NN temperature')
    parser.add_argument('--l2-grid', type=float, nargs='+', default=[1e-3, 1e-2, 1e-1, 1.0],
                        help='L2 values the linear probes choose from by CV in the train split')
    parser.add_argument('--dense-stride', type=int, default=6,
                        help='train-zone pixel grid of the dense probe (every n-th row/col)')
    parser.add_argument('--dense-block', type=int, default=30,
                        help='test-zone tiles (px) of the dense probe\'s confusion counts, the '
                        'units the intervals resample')
    parser.add_argument('--finetune-seeds', type=int, nargs='*', default=[0, 1, 2],
                        help='seeds whose final backbones (and random init) are fine-tuned '
                        'through mmseg and mmdet (finetune.py); none: no fine-tuning')
    parser.add_argument('--finetune-tasks', nargs='+', default=['seg_buildings', 'det_trees'],
                        choices=['seg_buildings', 'det_trees'])
    parser.add_argument('--finetune-iters', type=int, default=None,
                        help='fine-tuning iterations (default: the configs\' 100; fewer only '
                        'for smoke tests: records do not say how long they trained)')
    parser.add_argument('--n-boot', type=int, default=2000,
                        help='bootstrap replicates of every interval')
    parser.add_argument('--rerun-records', default=None,
                        help='records of reruns made elsewhere (another machine or kernel '
                        'setting, same --iters): the report checks each against the '
                        'prediction intervals')
    parser.add_argument('--keep-checkpoints', action='store_true')
    parser.add_argument('--report-only', action='store_true',
                        help='only aggregate the finished runs into the report')
    parser.add_argument('--pin-kernels', action='store_true',
                        help='run everything (training and probes) with the CPU kernels pinned '
                        'to AVX2 (%s): the same bits on any CPU of this class that has AVX2 '
                        '(docs/learning_signal.md, "Machine dependence")' % ' '.join(
                            f'{k}={v}' for k, v in PIN_ENV.items()))
    return parser.parse_args(argv)


# CPU kernels pinned to one instruction set (AVX2): ATen's vectorised kernels, oneDNN's
# convolutions, MKL's matrix products (its conditional numerical reproducibility mode)
PIN_ENV = dict(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2')


def pinned_env(environ: dict) -> Optional[dict]:
    """The environment to re-run the study in with :data:`PIN_ENV`, or None when ``environ``
    already has it. Errors: MKL_ENABLE_INSTRUCTIONS set (it silently overrides MKL_CBWR), or a
    CPU without AVX2."""
    if environ.get('MKL_ENABLE_INSTRUCTIONS'):
        raise SystemExit('--pin-kernels: unset MKL_ENABLE_INSTRUCTIONS '
                         f'(={environ["MKL_ENABLE_INSTRUCTIONS"]}): it overrides MKL_CBWR, and '
                         'MKL would run its native kernels')
    if all(environ.get(k) == v for k, v in PIN_ENV.items()):
        return None
    from cmid_mm.utils.machine import cpu_isa_flags
    if 'avx2' not in cpu_isa_flags():
        raise SystemExit('--pin-kernels pins the kernels to AVX2, which this CPU does not have')
    return dict(environ, **PIN_ENV)


# --- budget ----------------------------------------------------------------------------------
def round_budget(iters: int, n_ckpt: int) -> int:
    """Iterations rounded up to a multiple of the number of checkpoints (at least 2 each)."""
    per = max(2, math.ceil(iters / n_ckpt))
    return per * n_ckpt


def checkpoint_iters(iters: int, n_ckpt: int) -> List[int]:
    return [iters * k // n_ckpt for k in range(1, n_ckpt + 1)]


def budget_options(method: str, iters: int, n_ckpt: int, seed: int, iters_per_epoch: int,
                   data_root: str, num_workers: int) -> List[str]:
    """``--cfg-options`` of one run: budget, schedule, checkpoints, seed, data."""
    warmup = max(2, round(0.1 * iters))  # LinearLR reaches the base lr one step before `end`
    opts = [
        f'train_cfg.max_iters={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters // n_ckpt}',
        f'randomness.seed={seed}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.num_workers={num_workers}',
    ]
    if num_workers == 0:
        opts.append('train_dataloader.persistent_workers=False')
    if method in CMID_METHODS:  # teacher-temperature warm-up over the first 30 % of the budget
        opts.append('model.local_head.warmup_teacher_temp_epochs='
                    f'{0.3 * iters / max(iters_per_epoch, 1):.4f}')
    return opts


# --- data ------------------------------------------------------------------------------------
def load_rgb(path: str) -> np.ndarray:
    img = np.asarray(Image.open(path))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


def to_input(crops: List[np.ndarray], size: int, mean, std) -> torch.Tensor:
    """uint8 RGB crops -> (N, 3, size, size) normalised float (bilinear resize)."""
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False,
                          antialias=x.shape[-1] > size)
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std


def cv_band(patch: dict, task: dict, n_folds: int = 3) -> int:
    """Fold of a patch: band of the axis the split does NOT use (contiguous, spatial)."""
    split = task['splits'][patch['scene']]
    along_y = split['axis'] == 'x'  # split along x -> bands along y
    centre = (patch['top'] if along_y else patch['left']) + patch['size'] / 2
    scene = task['_scene_shapes'][patch['scene']]
    length = scene[0] if along_y else scene[1]
    return min(int(n_folds * centre / length), n_folds - 1)


def load_patch_task(data_root: str, name: str, mean, std) -> dict:
    task = json.load(open(osp.join(data_root, 'probes', f'{name}.json')))
    scenes = {k: load_rgb(osp.join(data_root, 'probes', v['image']))
              for k, v in task['scenes'].items()}
    task['_scene_shapes'] = {k: v.shape[:2] for k, v in scenes.items()}
    out = dict(classes=task['classes'], num_classes=len(task['classes']))
    for which in ('train', 'test'):
        patches = [p for p in task['patches'] if p['split'] == which]
        crops = [scenes[p['scene']][p['top']:p['top'] + p['size'],
                                    p['left']:p['left'] + p['size']] for p in patches]
        out[f'x_{which}'] = to_input(crops, task['input_size'], mean, std)
        out[f'y_{which}'] = torch.tensor([p['label'] for p in patches])
        out[f'rgb_{which}'] = torch.tensor(np.stack([c.reshape(-1, 3).mean(0) for c in crops]))
        if which == 'train':
            out['groups'] = torch.tensor([cv_band(p, task) for p in patches])
    return out


def load_dense_task(data_root: str, mean, std, stride: int) -> dict:
    task = json.load(open(osp.join(data_root, 'probes', f'{DENSE_TASK}.json')))
    out = dict(scale=float(task['input_scale']), num_classes=len(task['classes']),
               mean=mean, std=std)
    for which in ('train', 'test'):
        zone = task['zones'][which]
        scene = task['scenes'][zone['scene']]
        img = load_rgb(osp.join(data_root, 'probes', scene['image']))
        mask = np.asarray(Image.open(osp.join(data_root, 'probes', scene['mask'])))
        sl = (slice(zone['top'], zone['top'] + zone['height']),
              slice(zone['left'], zone['left'] + zone['width']))
        out[f'img_{which}'] = img[sl]
        out[f'mask_{which}'] = torch.from_numpy(mask[sl].astype(np.int64))
    # training pixels: a regular grid (no randomness); CV folds: three bands of rows
    h, w = out['mask_train'].shape
    ys, xs = torch.meshgrid(torch.arange(stride // 2, h, stride),
                            torch.arange(stride // 2, w, stride), indexing='ij')
    out['train_yx'] = (ys.flatten(), xs.flatten())
    out['groups'] = torch.div(ys.flatten() * 3, h, rounding_mode='floor').clamp(max=2)
    return out


# --- features --------------------------------------------------------------------------------
def build_backbone(backbone_cfg: dict, seed: Optional[int] = None,
                   state_dict: Optional[dict] = None) -> torch.nn.Module:
    """mmpretrain ResNet from the config; random init under ``seed`` or the given weights."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    cfg = dict(backbone_cfg)
    if state_dict is None:
        torch.manual_seed(seed if seed is not None else 0)
        backbone = MODELS.build(cfg)
        backbone.init_weights()
    else:
        cfg.pop('init_cfg', None)
        backbone = MODELS.build(cfg)
        missing, unexpected = backbone.load_state_dict(state_dict, strict=False)
        if missing:
            raise KeyError(f'checkpoint lacks backbone weights, e.g. {missing[:5]}')
    backbone.eval()
    return backbone


def load_student_backbone(checkpoint: str) -> dict:
    import cmid_mm  # noqa: F401  (safe loading of mmengine checkpoints)
    from cmid_mm.utils.export import extract_backbone

    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    return extract_backbone(ckpt['state_dict'], 'student')


@torch.no_grad()
def gap_features(backbone, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Global average pool of the last stage, (N, C). channels_last: ~20 % faster on CPU."""
    backbone = backbone.to(memory_format=torch.channels_last)
    feats = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].contiguous(memory_format=torch.channels_last)
        feats.append(backbone(xb)[-1].mean(dim=(2, 3)))
    return torch.cat(feats)


@torch.no_grad()
def dense_feature_map(backbone, img: np.ndarray, scale: float, mean, std):
    """Last-stage map of the whole zone resized by ``scale`` (padded to a multiple of 32).

    Returns the map (C, h, w) and the resized input size (H', W') before padding.
    """
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    size = (round(img.shape[0] * scale), round(img.shape[1] * scale))
    x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    pad_h, pad_w = (-size[0]) % 32, (-size[1]) % 32
    x = F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
    return backbone(x)[-1][0], size


# --- evaluation ------------------------------------------------------------------------------
class num_threads:
    """Run a block with ``n`` torch threads. The probes' many tiny L-BFGS steps are 20-40x
    faster single-threaded than with 2 OpenMP threads on a shared machine (measured)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def eval_patch_task(train_x, test_x, t: dict, args, knn_metric='cosine') -> dict:
    from cmid_mm.evaluation.probes import classification_metrics, knn_probe, linear_probe

    k = t['num_classes']
    with num_threads(1):
        knn = knn_probe(train_x, t['y_train'], test_x, k, k=args.k, T=args.temperature,
                        metric=knn_metric)
        lin = linear_probe(train_x, t['y_train'], test_x, k, groups=t['groups'],
                           l2_grid=args.l2_grid)
    # per-patch predictions: the intervals resample test patches (and seeds)
    return dict(knn=dict(classification_metrics(knn, t['y_test'], k), pred=knn.tolist()),
                linear=dict(classification_metrics(lin['pred'], t['y_test'], k), l2=lin['l2'],
                            pred=lin['pred'].tolist()))


def dense_scores(pred: torch.Tensor, target: torch.Tensor, l2: float, block: int) -> dict:
    """IoU / pixel accuracy / balanced accuracy, and the confusion counts per test tile
    (``blocks``: the units the intervals resample)."""
    from cmid_mm.evaluation.probes import balanced_accuracy, binary_iou, block_confusion

    return dict(iou=binary_iou(pred, target), pixel_acc=float((pred == target).double().mean()),
                bacc=balanced_accuracy(pred, target, 2), l2=l2,
                blocks=dict(block_confusion(pred, target, block), size=block))


@torch.no_grad()
def eval_dense(backbone, d: dict, args) -> dict:
    """Per-pixel linear probe on the last-stage map bilinearly interpolated to pixels."""
    from cmid_mm.evaluation.probes import bilinear_matrix, interpolated_linear_probe

    def cells_and_interp(which, ys, xs):
        fmap, size = dense_feature_map(backbone, d[f'img_{which}'], d['scale'], d['mean'],
                                       d['std'])
        c, h, w = fmap.shape
        zone_h, zone_w = d[f'mask_{which}'].shape
        # map cells per zone pixel: (resized / zone size) / 32 input pixels per cell
        interp = bilinear_matrix(ys, xs, (h, w), (size[0] / zone_h / 32, size[1] / zone_w / 32))
        return fmap.reshape(c, -1).t(), interp

    ys, xs = d['train_yx']
    cells, interp = cells_and_interp('train', ys, xs)
    with torch.enable_grad(), num_threads(1):
        lin = interpolated_linear_probe(cells, interp, d['mask_train'][ys, xs], 2,
                                        groups=d['groups'], l2_grid=args.l2_grid)
    ht, wt = d['mask_test'].shape
    yy, xx = torch.meshgrid(torch.arange(ht), torch.arange(wt), indexing='ij')
    cells, interp = cells_and_interp('test', yy.flatten(), xx.flatten())
    # the probe is affine and the interpolation weights sum to 1: interpolated cell logits are
    # the logits of the interpolated pixel features
    cell_logits = ((cells - lin['mean']) / lin['std']) @ lin['w'] + lin['b']
    pred = torch.sparse.mm(interp, cell_logits).argmax(1).view(ht, wt)
    return dense_scores(pred, d['mask_test'], lin['l2'], args.dense_block)


def evaluate_backbone(backbone, tasks: dict, dense: dict, args) -> dict:
    out = {}
    for name in PATCH_TASKS:
        t = tasks[name]
        out[name] = eval_patch_task(gap_features(backbone, t['x_train']),
                                    gap_features(backbone, t['x_test']), t, args)
    out[DENSE_TASK] = eval_dense(backbone, dense, args)
    return out


def evaluate_baselines(tasks: dict, dense: dict, args) -> dict:
    """Mean RGB of each patch (Euclidean k-NN, linear probe); the pixel's value (dense)."""
    from cmid_mm.evaluation.probes import linear_probe

    out = {}
    for name in PATCH_TASKS:
        t = tasks[name]
        out[name] = eval_patch_task(t['rgb_train'], t['rgb_test'], t, args,
                                    knn_metric='euclidean')
    ys, xs = dense['train_yx']
    x_tr = torch.from_numpy(dense['img_train'][ys.numpy(), xs.numpy()]).double()
    test = torch.from_numpy(dense['img_test'].reshape(-1, 3)).double()
    with num_threads(1):
        lin = linear_probe(x_tr, dense['mask_train'][ys, xs], test, 2, groups=dense['groups'],
                           l2_grid=args.l2_grid)
    out[DENSE_TASK] = dense_scores(lin['pred'].view(dense['mask_test'].shape),
                                   dense['mask_test'], lin['l2'], args.dense_block)
    return out


# --- runs ------------------------------------------------------------------------------------
def train(method: str, seed: int, iters: int, run_dir: str, args, iters_per_epoch: int) -> dict:
    cfg = osp.join(args.config_dir, f'{method}.py')
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', run_dir,
           '--resume', 'auto', '--cfg-options'] + budget_options(
               method, iters, args.checkpoints, seed, iters_per_epoch, args.data,
               args.num_workers)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    # idle OpenMP threads sleep instead of spinning: the same bits (checked: SimMIM, 4 steps,
    # identical weights), and a step that shares the 2 cores with another job took 1.1 s
    # instead of 6.4 s (spinning threads of two jobs fight for the cores)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.makedirs(run_dir, exist_ok=True)
    log = osp.join(run_dir, 'train.log')
    print(f'[study] train {method} seed {seed}: {" ".join(shlex.quote(c) for c in cmd)}',
          flush=True)
    load_before = loadavg()
    start = time.time()
    with open(log, 'a') as f:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.time() - start
    if proc.returncode:
        tail = ''.join(open(log).readlines()[-30:])
        raise RuntimeError(f'training {method} seed {seed} failed (exit {proc.returncode}); '
                           f'log {log}:\n{tail}')
    timing = parse_times(run_dir, checkpoint_iters(iters, args.checkpoints))
    # wall_clock_s: this attempt only (a resumed run's earlier attempts are not counted)
    timing.update(wall_clock_s=round(wall, 2), loadavg_before=load_before,
                  loadavg_after=loadavg(), command=portable_args(cmd))
    return timing


def record_path(args, method: str, seed: int, iters: int) -> str:
    """The JSON that marks a run finished (random init: no budget)."""
    if method == 'random':
        return osp.join(args.records, 'random', f'seed{seed}.json')
    return osp.join(args.records, f'it{iters}', method, f'seed{seed}.json')


def write_record(path: str, rec: dict) -> None:
    """Write atomically: an interrupted write never leaves a record that looks finished."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(rec, f, indent=None, separators=(',', ':'))
    os.replace(path + '.tmp', path)


def run_environment(args) -> dict:
    """What decides a run's bits besides the seed: CPU, its ISA, threads, kernel pins."""
    info = machine_info()
    keep = ('cpu_model', 'isa_flags', 'torch_cpu_capability', 'kernel_env', 'torch')
    return dict({k: info.get(k) for k in keep}, threads=args.threads,
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                pinned=all(os.environ.get(k) == v for k, v in PIN_ENV.items()))


def eval_random(seed: int, backbone_cfg: dict, tasks, dense, args) -> dict:
    path = record_path(args, 'random', seed, 0)
    if osp.isfile(path):
        return json.load(open(path))
    start = time.time()
    metrics = evaluate_backbone(build_backbone(backbone_cfg, seed=seed), tasks, dense, args)
    rec = dict(method='random', seed=seed, iters=0, evals={'0': metrics},
               eval_s={'0': round(time.time() - start, 2)}, environment=run_environment(args))
    write_record(path, rec)
    return rec


def run_method(method, seed, iters, backbone_cfg, tasks, dense, args, iters_per_epoch) -> dict:
    run_dir = osp.join(args.work_dir, f'it{iters}', method, f'seed{seed}')
    path = record_path(args, method, seed, iters)
    if osp.isfile(path):
        print(f'[study] {method} seed {seed}: done before ({path}), skipped', flush=True)
        return json.load(open(path))
    ckpts = {it: osp.join(run_dir, f'iter_{it}.pth')
             for it in checkpoint_iters(iters, args.checkpoints)}
    timing_path = osp.join(run_dir, 'timing.json')
    if all(osp.isfile(p) for p in ckpts.values()) and osp.isfile(timing_path):
        timing = json.load(open(timing_path))  # trained before, evaluation interrupted
    else:
        timing = train(method, seed, iters, run_dir, args, iters_per_epoch)
        json.dump(timing, open(timing_path, 'w'), indent=1)
    evals, eval_s = {}, {}
    for it, ckpt in ckpts.items():
        start = time.time()
        backbone = build_backbone(backbone_cfg, state_dict=load_student_backbone(ckpt))
        if it == iters:  # the final student backbone, stock ResNet-18 keys: for fine-tuning
            torch.save(dict(state_dict=backbone.state_dict()), final_backbone_path(run_dir))
        evals[str(it)] = evaluate_backbone(backbone, tasks, dense, args)
        eval_s[str(it)] = round(time.time() - start, 2)
        print(f'[study] {method} seed {seed} iter {it}: ' + summary_line(evals[str(it)]) +
              f' ({eval_s[str(it)]:.0f} s)', flush=True)
    rec = dict(method=method, seed=seed, iters=iters, timing=timing, evals=evals,
               eval_s=eval_s, environment=run_environment(args))
    write_record(path, rec)
    if not args.keep_checkpoints:
        for ckpt in glob.glob(osp.join(run_dir, 'iter_*.pth')):
            os.remove(ckpt)
    return rec


def finetune_record_path(args, task: str, method: str, seed: int, iters: int) -> str:
    budget = 'random' if method == 'random' else f'it{iters}'
    return osp.join(args.records, 'finetune', task, budget, method, f'seed{seed}.json')


def run_finetunes(seed: int, iters: int, args) -> None:
    """Fine-tune every method's final backbone of ``seed`` (random: the toolbox's own init
    under the seed) on every fine-tuning task; one record per run."""
    from finetune import prepare_finetune_data, run_finetune

    data_dir = osp.join(args.work_dir, 'finetune_data')
    prepare_finetune_data(args.data, data_dir)
    for method in args.methods:
        backbone = None
        if method != 'random':
            backbone = final_backbone_path(osp.join(args.work_dir, f'it{iters}', method,
                                                    f'seed{seed}'))
        for task in args.finetune_tasks:
            path = finetune_record_path(args, task, method, seed, iters)
            if osp.isfile(path):
                continue
            if backbone is not None and not osp.isfile(backbone):
                raise SystemExit(f'fine-tuning {task} from {method} seed {seed}: its final '
                                 f'backbone {backbone} is missing (the work dir of the '
                                 'pretraining run was removed). Delete its pretraining record '
                                 f'{record_path(args, method, seed, iters)} to retrain it, or '
                                 'leave the seed out of --finetune-seeds')
            work = osp.join(args.work_dir, 'finetune', task, method, f'seed{seed}')
            print(f'[study] fine-tune {task} from {method} seed {seed}', flush=True)
            rec = run_finetune(task, backbone, seed, work, data_dir, threads=args.threads,
                               iters=args.finetune_iters)
            rec['environment'] = run_environment(args)
            write_record(path, rec)
            print(f'[study] fine-tune {task} from {method} seed {seed}: ' + ', '.join(
                f'{k} {100 * v:.1f}' for k, v in rec['metrics'].items()
                if isinstance(v, float)), flush=True)


def load_finetunes(args, iters: int) -> dict:
    """task -> method -> seed -> fine-tuning record, for the requested methods and seeds."""
    out = {}
    for task in args.finetune_tasks:
        for method in args.methods:
            for seed in args.seeds:
                path = finetune_record_path(args, task, method, seed, iters)
                if osp.isfile(path):
                    out.setdefault(task, {}).setdefault(method, {})[seed] = json.load(
                        open(path))
    return out


def load_records(records: str, iters: int) -> Dict[str, Dict[int, dict]]:
    """method -> seed -> record of every run recorded under ``records`` at ``iters``."""
    out = {}
    for path in sorted(glob.glob(osp.join(records, 'random', 'seed*.json')) +
                       glob.glob(osp.join(records, f'it{iters}', '*', 'seed*.json'))):
        rec = json.load(open(path))
        out.setdefault(rec['method'], {})[int(rec['seed'])] = rec
    return out


def final_backbone_path(run_dir: str) -> str:
    return osp.join(run_dir, 'backbone_final.pth')


def summary_line(metrics: dict) -> str:
    parts = [f'{n} lin {100 * metrics[n]["linear"]["bacc"]:.1f} knn '
             f'{100 * metrics[n]["knn"]["bacc"]:.1f}' for n in PATCH_TASKS]
    parts.append(f'dense IoU {100 * metrics[DENSE_TASK]["iou"]:.1f}')
    return '; '.join(parts)


# --- report ----------------------------------------------------------------------------------
def mean_std(values: List[float]) -> Dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return dict(mean=float('nan'), std=float('nan'), n=0)
    return dict(mean=float(arr.mean()), std=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
                n=int(arr.size))


def run_cost(seeds: Dict[int, dict]) -> dict:
    return dict(
        s_per_iter_median=mean_std([r['timing']['s_per_iter_median'] for r in seeds.values()]),
        data_s_per_iter_median=mean_std([r['timing']['data_s_per_iter_median']
                                         for r in seeds.values()]),
        wall_clock_s=mean_std([r['timing']['wall_clock_s'] for r in seeds.values()]),
        eval_s_per_checkpoint=mean_std([v for r in seeds.values() for v in r['eval_s'].values()]),
        loadavg_1min=mean_std([v for r in seeds.values()
                               for v in (r['timing'].get('loadavg_before') or [None])[:1] +
                               (r['timing'].get('loadavg_after') or [None])[:1]]))


def aggregate(runs: Dict[str, Dict[int, dict]], randoms: Dict[int, dict], baselines: dict,
              targets: dict, iters: int, args, info: dict, pool_tiles: int, batch: int,
              finetune: Optional[dict] = None, ap_fn=None, rerun: Optional[dict] = None) -> dict:
    """The report (study_report.build_report) with the budget, cost, machine and command."""
    from study_report import build_report

    ckpts = checkpoint_iters(iters, args.checkpoints)
    res = build_report(runs, randoms, baselines, targets, iters, ckpts, n_boot=args.n_boot,
                       finetune=finetune, ap_fn=ap_fn, rerun=rerun)
    spent = sum(r['timing']['wall_clock_s'] + sum(r['eval_s'].values())
                for seeds in runs.values() for r in seeds.values()) + \
        sum(sum(r['eval_s'].values()) for r in randoms.values()) + \
        sum(r['timing']['wall_clock_s'] for t in (finetune or {}).values()
            for seeds in t.values() for r in seeds.values())
    res.update(
        study='learning signal on real imagery (issue 18: intervals, SimMIM, fine-tuning)',
        command=' '.join(shlex.quote(a) for a in portable_args([sys.executable] + sys.argv)),
        written=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        machine=info, budget=dict(iters=iters, batch_size=batch, pool_tiles=pool_tiles,
                                  images_seen=iters * batch,
                                  passes_over_pool=round(iters * batch / pool_tiles, 2),
                                  checkpoints=ckpts),
        seeds=sorted({s for m in runs.values() for s in m} | set(randoms)),
        probes=dict(knn=dict(k=args.k, T=args.temperature, metric='cosine on GAP features'),
                    linear=dict(l2_grid=args.l2_grid, cv='3 spatial bands of the train split',
                                loss='class-balanced cross-entropy, L-BFGS'),
                    dense=dict(features='last stage (stride 32), bilinear to pixels',
                               train_pixel_stride=args.dense_stride,
                               test_tile_px=args.dense_block)),
        total_run_and_probe_s=round(spent, 1),
        cost={m: run_cost(seeds) for m, seeds in runs.items()})
    return res


def fmt(ms: dict, scale: float = 100.) -> str:
    if not ms or ms.get('n', 0) == 0 or math.isnan(ms['mean']):
        return '–'
    if ms['n'] == 1:
        return f'{scale * ms["mean"]:.1f}'
    return f'{scale * ms["mean"]:.1f} ± {scale * ms["std"]:.1f}'


def write_markdown(res: dict, path: str) -> None:
    from study_report import markdown_tables

    b, mach = res['budget'], res['machine']
    lines = [
        '# Learning signal on real imagery: results', '',
        f'Written {res["written"]} by `{res["command"]}` (started '
        f'{mach["date"]}).', '',
        f'Machine: {mach["cpu_model"]}, {mach["cpu_count"]} logical CPUs, torch '
        f'{mach["torch"]}, mmpretrain {mach["mmpretrain"]}, Python {mach["python"]}; kernel '
        f'variables {mach.get("kernel_env")}. Timings are wall-clock and are inflated when '
        'other jobs share the machine (load averages per run are in the records).', '',
        f'Budget per method and seed: **{b["iters"]} iterations x batch {b["batch_size"]}** '
        f'= {b["images_seen"]} images ({b["passes_over_pool"]} passes over the '
        f'{b["pool_tiles"]}-tile pool), checkpoints at {b["checkpoints"]}; seeds '
        f'{res["seeds"]}. Compute spent on the runs reported here (training, probes, '
        f'fine-tuning): {res["total_run_and_probe_s"] / 3600:.2f} h. Intervals: '
        f'{res["design"]["n_boot"]} bootstrap replicates over seeds and test units '
        f'(patches; {res["probes"]["dense"]["test_tile_px"]} px tiles of the dense test zone). '
        f'Rule: {res["design"]["rule"]}.', '']
    lines += markdown_tables(res)
    lines += ['## Pretraining cost', '',
              '| method | s/iter (median) | data wait s/iter | wall-clock per run, s | '
              'probe time per checkpoint, s | load average (1 min) |', '|---|---|---|---|---|---|']
    for m, c in res['cost'].items():
        lines.append(f'| {m} | ' + ' | '.join(fmt(c[k], 1.) for k in (
            's_per_iter_median', 'data_s_per_iter_median', 'wall_clock_s',
            'eval_s_per_checkpoint', 'loadavg_1min')) + ' |')
    lines += ['', 'Plot: `probe_vs_iters.png` (linear probe solid, k-NN dashed, band: 95 % '
              'interval of the mean; iteration 0 is the random initialisation of each seed).',
              '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def plot(res: dict, path: str) -> None:
    from study_report import plot_curves

    b = res['budget']
    plot_curves(res, path, f'Frozen ResNet-18 features vs pretraining iterations (batch '
                f'{b["batch_size"]}, seeds {res["seeds"]}, mean and 95 % interval)')


# --- main ------------------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    if args.pin_kernels:
        # the kernel choice is read when torch / MKL / oneDNN start: run again in a new
        # process with the pins (the training subprocesses inherit them)
        env = pinned_env(dict(os.environ))
        if env is not None:
            print('[study] --pin-kernels: running again with ' + ' '.join(
                f'{k}={v}' for k, v in PIN_ENV.items()), flush=True)
            argv = sys.argv[1:] if argv is None else list(argv)
            sys.stdout.flush()
            os.execve(sys.executable, [sys.executable, osp.abspath(__file__)] + argv, env)
    os.chdir(REPO)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights reports
    torch.set_num_threads(args.threads)
    args.data = osp.abspath(args.data)
    args.work_dir = osp.abspath(args.work_dir)
    args.records = osp.abspath(args.records or osp.join(args.out, 'runs'))
    iters = round_budget(args.iters, args.checkpoints)
    if iters != args.iters:
        print(f'[study] --iters {args.iters} -> {iters} (a multiple of {args.checkpoints} '
              'checkpoints)', flush=True)
    from cmid_mm.utils import load_config

    random_cfg = load_config(osp.join(args.config_dir, 'random.py'))
    mean, std = list(random_cfg.pool_mean), list(random_cfg.pool_std)
    manifest = json.load(open(osp.join(args.data, 'manifest.json')))
    if [round(v, 2) for v in manifest['pretrain']['mean_rgb']] != mean:
        print('[study] warning: projects/benchmarks/configs normalisation differs from the '
              f'pool statistics in {args.data}/manifest.json', flush=True)
    pool_tiles = manifest['pretrain']['num_tiles']
    batch = int(random_cfg.batch_size)
    iters_per_epoch = pool_tiles // batch
    info = machine_info()
    start = time.time()

    print('[study] loading probe data', flush=True)
    tasks = {n: load_patch_task(args.data, n, mean, std) for n in PATCH_TASKS}
    dense = load_dense_task(args.data, mean, std, args.dense_stride)
    base_path = osp.join(args.records, 'baselines.json')
    if osp.isfile(base_path):
        baselines = json.load(open(base_path))
    else:
        baselines = evaluate_baselines(tasks, dense, args)
        write_record(base_path, baselines)

    backbone_cfg = dict(random_cfg.model.backbone)
    runs, randoms = {}, {}
    for seed in args.seeds:
        if args.report_only:
            p = record_path(args, 'random', seed, 0)
            if osp.isfile(p):
                randoms[seed] = json.load(open(p))
        else:
            randoms[seed] = eval_random(seed, backbone_cfg, tasks, dense, args)
            print(f'[study] random seed {seed}: ' + summary_line(randoms[seed]['evals']['0']),
                  flush=True)
        for method in args.methods:
            if method == 'random':
                continue
            if args.report_only:
                p = record_path(args, method, seed, iters)
                if osp.isfile(p):
                    runs.setdefault(method, {})[seed] = json.load(open(p))
                continue
            runs.setdefault(method, {})[seed] = run_method(
                method, seed, iters, backbone_cfg, tasks, dense, args, iters_per_epoch)
        if not args.report_only and seed in args.finetune_seeds:
            run_finetunes(seed, iters, args)
    # iteration 0 of every curve is the seed's random initialisation, whether or not
    # 'random' is one of --methods; only its table row depends on that
    targets = {n: tasks[n]['y_test'].numpy() for n in PATCH_TASKS}
    rerun = load_records(args.rerun_records, iters) if args.rerun_records else None
    from finetune import ap50_of_tiles
    res = aggregate(runs, randoms, baselines, targets, iters, args, info, pool_tiles, batch,
                    finetune=load_finetunes(args, iters), ap_fn=ap50_of_tiles, rerun=rerun)
    if 'random' not in args.methods:
        res['summary'].pop('random', None)
    res['study_wall_clock_s'] = round(time.time() - start, 1)
    res['machine']['loadavg_end'] = loadavg()
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(res, f, indent=1)
    write_markdown(res, osp.join(args.out, 'results.md'))
    plot(res, osp.join(args.out, 'probe_vs_iters.png'))
    print(f'[study] wrote {args.out}/results.json, results.md, probe_vs_iters.png '
          f'({res["study_wall_clock_s"]:.0f} s this invocation)', flush=True)


if __name__ == '__main__':
    main()
