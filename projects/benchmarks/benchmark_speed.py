"""Speed and memory of a CMID training step against the backbone-only minimum and mmpretrain's
own MoCo-v2 / BYOL / SimMIM steps, plus data-pipeline throughput (issue 6, part 1).

    python projects/benchmarks/benchmark_speed.py                        # R50 + Swin-T, 224 px
    python projects/benchmarks/benchmark_speed.py --archs resnet50 --batch-size 8 --reps 5
    python projects/benchmarks/benchmark_speed.py --archs swin-b --variants cmid cmid-min

One run measures, for each backbone, every variant **interleaved** (round after round, each
variant one step per round, in a rotating order) after ``--warmup`` rounds, and reports the
median step time, images/s and peak RSS:

* ``cmid``: the full CMID training step (``model.train_step``: preprocessing, teacher EMA
  update, two teacher passes, two masked student passes, MIM / global / local heads and losses,
  queue, centre, backward, optimizer update) with the recipe's optimizer (Adan);
* ``cmid-min``: the backbone-only minimum CMID cannot avoid, on the same batch: preprocessing,
  mean fill, two masked student forward + backward passes, two teacher forward passes (no
  autograd), the Adan update of the student backbone only;
* ``cmid-joint``: the full step with ``joint_views=True`` (both views in one backbone pass;
  BatchNorm statistics are then computed over both views together, see docs/benchmarks.md);
* ``mocov2`` / ``byol``: mmpretrain's ``MoCo`` / ``BYOL`` as in its model-zoo configs
  (optimizer SGD / LARS) with the same backbone and batch;
* ``simmim`` (Swin only): mmpretrain's ``SimMIM`` (one masked view, AdamW).

Each variant lives in its own worker process (built once; workers step one at a time, so they
never compete for the cores), which makes ``ru_maxrss`` of the worker the true peak RSS of
that variant. Every worker gets the same batch: ``--batch-size`` images of ``data/rs_sample``
through the real CMID train pipeline (224 px views, masks, crop boxes).

The data pipeline is timed in one single-threaded process (what one data-loader worker does):
the full CMID train pipeline (decode, two views, two masks, pack) and mmpretrain's BYOL
pipeline, both at 224 px on the same files, images/s per worker. The ratio to the CMID
training step's images/s tells how many workers keep one trainer busy.

Results: printed, and written to ``--out-dir`` as ``speed.json`` and ``speed.md``.
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import resource
import statistics
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

ARCHS = {
    # name: (CMID model base config, backbone overrides, last-stage channels)
    'resnet50': ('configs/_base_/models/cmid_resnet50.py', dict(depth=50), 2048),
    'resnet18': ('configs/_base_/models/cmid_resnet50.py', dict(depth=18), 512),
    'swin-t': ('configs/_base_/models/cmid_swin_base.py', dict(arch='tiny'), 768),
    'swin-b': ('configs/_base_/models/cmid_swin_base.py', dict(arch='base'), 1024),
}
VARIANTS = ('cmid', 'cmid-min', 'cmid-joint', 'mocov2', 'byol', 'simmim')
TARGETS = dict(step_ratio=1.10, rss_ratio=1.3, pipeline_ratio=3.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=['resnet50', 'swin-t'],
                        choices=sorted(ARCHS), help='backbones to measure')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS,
                        help='steps to measure (simmim only runs for Swin)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per step (R50 at 8: ~3 GB per worker, 5 workers)')
    parser.add_argument('--img-size', type=int, default=224, help='view size in pixels')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--reps', type=int, default=5, help='timed rounds')
    parser.add_argument('--threads', type=int, default=2, help='torch threads per step')
    parser.add_argument('--pipeline-samples', type=int, default=160,
                        help='images through each data pipeline (0: skip the pipeline)')
    parser.add_argument('--no-flops', dest='flops', action='store_false',
                        help="skip counting each step's FLOPs (one extra untimed step)")
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'rs_sample'),
                        help='folder with an images/ subfolder of RGB files')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'work_dirs', 'benchmark_speed'))
    args = parser.parse_args(argv)
    for name in ('batch_size', 'reps', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if not osp.isdir(osp.join(args.data_root, 'images')):
        parser.error(f'--data-root {args.data_root!r} has no images/ folder')
    return args


def _mmpretrain_config(rel: str):
    from mmengine.config import Config
    import mmpretrain
    root = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
    return Config.fromfile(osp.join(root, rel))


def cmid_model_cfg(arch: str, img_size: int) -> dict:
    """The CMID model config of ``arch`` (the repo's base config with the backbone changed)."""
    from mmengine.config import Config
    base, backbone, channels = ARCHS[arch]
    model = Config.fromfile(osp.join(REPO, base)).model
    model.backbone.update(backbone)
    if 'swin' in arch:
        model.backbone.img_size = img_size
    model.mim_head.in_channels = channels
    model.global_neck.in_channels = channels
    model.local_neck.in_channels = channels
    return model


def cmid_optim_cfg() -> dict:
    """The recipe's optimizer (Adan, paramwise rules) in float32 (CPU)."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/schedules/adan_coslr-warmup10e_200e.py'))
    optim = cfg.optim_wrapper.to_dict()
    optim['type'] = 'OptimWrapper'
    optim.pop('loss_scale', None)
    return optim


def reference_cfgs(variant: str, arch: str, img_size: int) -> tuple:
    """(model, optim_wrapper) of mmpretrain's own MoCo-v2 / BYOL / SimMIM config for ``arch``."""
    _, backbone, channels = ARCHS[arch]
    if variant == 'simmim':
        cfg = _mmpretrain_config(
            'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py')
        model = cfg.model.to_dict()
        # the stock Swin window (7) at 224 px, as Swin-T/B are usually trained
        model['backbone'] = dict(type='SimMIMSwinTransformer', img_size=img_size, **backbone)
        model['neck']['in_channels'] = channels
    else:
        rel = dict(mocov2='mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
                   byol='byol/byol_resnet50_16xb256-coslr-200e_in1k.py')[variant]
        cfg = _mmpretrain_config(rel)
        model = cfg.model.to_dict()
        if 'swin' in arch:
            model['backbone'] = dict(type='SwinTransformer', img_size=img_size,
                                     out_indices=(3, ), **backbone)
        else:
            model['backbone'].update(backbone)
        model['neck']['in_channels'] = channels
    optim = cfg.optim_wrapper.to_dict()
    optim['type'] = 'OptimWrapper'
    optim.pop('loss_scale', None)
    return model, optim


# --------------------------------------------------------------------------------------------
# the batch


def cmid_pipeline(img_size: int) -> list:
    """The CMID RGB train pipeline at ``img_size`` (configs/_base_/datasets/cmid_pipeline_rgb)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/cmid_pipeline_rgb.py'))
    pipeline = cfg.train_pipeline
    for t in pipeline:
        if t['type'] == 'CMIDMultiView':
            for view in t['transforms']:
                for v in view:
                    if v['type'] == 'RandomResizedCropWithBox':
                        v['scale'] = img_size
                    if v['type'] == 'BlockMaskGenerator':
                        v['input_size'] = img_size
    return pipeline


def byol_pipeline(img_size: int) -> list:
    cfg = _mmpretrain_config('_base_/datasets/imagenet_bs32_byol.py')
    pipeline = cfg.train_pipeline
    for t in pipeline:
        for view in t.get('transforms', []):
            for v in view:
                if v['type'] == 'RandomResizedCrop':
                    v['scale'] = img_size
    return pipeline


def build_dataset(data_root: str, pipeline: list, cmid: bool):
    import cmid_mm  # noqa: F401  (registers the transforms)
    from mmpretrain.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(
        dict(type='RSImageFolder' if cmid else 'CustomDataset', data_root=data_root,
             data_prefix='images', with_label=False, pipeline=pipeline))
    for t in dataset.pipeline.transforms:
        if hasattr(t, 'set_epoch'):  # PerSampleSeed: augmentation = f(seed 0, epoch 0, index)
            t.set_epoch(0, 0)
    return dataset


def make_batch(args) -> dict:
    """``batch_size`` samples of the real CMID pipeline, collated as the trainer does."""
    from mmengine.dataset import default_collate
    dataset = build_dataset(args.data_root, cmid_pipeline(args.img_size), cmid=True)
    samples = [dataset[i % len(dataset)] for i in range(args.batch_size)]
    return default_collate(samples)


# --------------------------------------------------------------------------------------------
# workers: one per (arch, variant)


class MinimumStep:
    """The backbone-only minimum of a CMID step, built from the CMID model itself."""

    def __init__(self, model, optim_cfg):
        from mmengine.optim import build_optim_wrapper
        self.model = model
        self.optim_wrapper = build_optim_wrapper(model.backbone, optim_cfg)

    def __call__(self, data):
        import torch
        from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask
        model = self.model
        data = model.data_preprocessor(data, True)
        views, samples = data['inputs'], data['data_samples']
        masks = torch.stack([ds.mask for ds in samples])
        with torch.no_grad():
            t_feats = [model.teacher.module.backbone(v)[-1] for v in views]
        loss = 0.
        for v, view in enumerate(views):
            mask = masks[:, v]
            masked = mean_fill(view, upsample_mask(mask, view.shape[-2:]))
            loss = loss + model.backbone(masked, mask)[-1].mean()
        self.optim_wrapper.update_params(loss)
        return t_feats


def build_step(variant: str, arch: str, img_size: int):
    """A callable ``step(batch)`` doing one training step of ``variant``."""
    import torch
    import cmid_mm  # noqa: F401
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    if variant.startswith('cmid'):
        model_cfg = cmid_model_cfg(arch, img_size)
        if variant == 'cmid-joint':
            model_cfg['joint_views'] = True
        model = MODELS.build(model_cfg)
        model.init_weights()
        model.train()
        if variant == 'cmid-min':
            return MinimumStep(model, cmid_optim_cfg())
        optim_wrapper = build_optim_wrapper(model, cmid_optim_cfg())
    else:
        model_cfg, optim_cfg = reference_cfgs(variant, arch, img_size)
        model = MODELS.build(model_cfg)
        model.init_weights()
        model.train()
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    return lambda data: model.train_step(data, optim_wrapper)


def adapt_batch(variant: str, batch: dict) -> dict:
    """The CMID batch in the format ``variant`` expects (same images)."""
    from mmpretrain.structures import DataSample
    if variant.startswith('cmid'):
        return batch
    n = len(batch['data_samples'])
    if variant == 'simmim':  # one view, its mask on the stride-4 token grid
        samples = [DataSample().set_mask(ds.mask[0]) for ds in batch['data_samples']]
        return dict(inputs=batch['inputs'][0], data_samples=samples)
    return dict(inputs=list(batch['inputs']), data_samples=[DataSample() for _ in range(n)])


def rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def batch_digest(batch: dict) -> str:
    """A hash of the batch's pixels and masks: every worker must train on the same batch."""
    import hashlib
    h = hashlib.sha1()
    for view in batch['inputs']:
        h.update(view.numpy().tobytes())
    for ds in batch['data_samples']:
        h.update(ds.mask.numpy().tobytes())
    return h.hexdigest()[:12]


def die_with_parent() -> None:
    """Linux: SIGKILL this worker when the benchmark process dies (Ctrl-C, kill)."""
    if sys.platform.startswith('linux'):
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def count_flops(step, data) -> int:
    """FLOPs of one step as torch's FlopCounterMode counts them (matmuls, convolutions, SDPA;
    elementwise ops, norms, FFTs and the optimizer are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step(data)
    return counter.get_total_flops()


def worker(conn, variant: str, arch: str, args) -> None:
    import torch
    die_with_parent()
    from mmengine.logging import MMLogger
    torch.set_num_threads(args.threads)
    # quiet: mmengine's optimizer constructor warns once per frozen BYOL target parameter
    MMLogger.get_instance('benchmark_speed', log_level='ERROR')
    # what a Runner would publish: the cosine EMA schedules read them
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 100000)
    hub.update_info('iter', 0)
    hub.update_info('epoch', 0)
    try:
        batch = make_batch(args)  # deterministic (per-sample seeding): identical in all workers
        step = build_step(variant, arch, args.img_size)
        data = adapt_batch(variant, batch)
        conn.send(('ready', (rss_mb(), batch_digest(batch))))
        while conn.recv() == 'step':
            t0 = time.perf_counter()
            step(data)
            conn.send(('time', time.perf_counter() - t0))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send(('peak', (peak, count_flops(step, data) if args.flops else None)))
    except EOFError:  # the benchmark process went away
        return
    except Exception as e:  # report and exit: the parent names the variant
        import traceback
        conn.send(('error', f'{type(e).__name__}: {e}\n{traceback.format_exc()}'))


def bench_arch(arch: str, args) -> dict:
    """Interleaved step timing of every variant for one backbone."""
    variants = [v for v in args.variants if v != 'simmim' or 'swin' in arch]
    ctx = mp.get_context('spawn')
    procs, conns, idle_rss, digests = {}, {}, {}, set()
    for v in variants:  # built one after the other: no competition for the cores
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(child, v, arch, args), daemon=True)
        p.start()
        kind, value = parent.recv()
        if kind == 'error':
            raise RuntimeError(f'{arch}/{v}: building the step failed:\n{value}')
        procs[v], conns[v], (idle_rss[v], digest) = p, parent, value
        digests.add(digest)
    if len(digests) != 1:
        raise RuntimeError(f'{arch}: the workers built different batches ({digests}): the '
                           'CMID pipeline is not deterministic per sample')
    times = {v: [] for v in variants}
    for r in range(args.warmup + args.reps):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            conns[v].send('step')
            kind, value = conns[v].recv()
            if kind == 'error':
                raise RuntimeError(f'{arch}/{v}: the step failed:\n{value}')
            if r >= args.warmup:
                times[v].append(value)
        print(f'  {arch} round {r + 1}/{args.warmup + args.reps}' +
              (' (warm-up)' if r < args.warmup else '') + ': ' +
              ', '.join(f'{v} {times[v][-1]:.2f}s' for v in variants if r >= args.warmup),
              flush=True)
    peak, flops = {}, {}
    for v in variants:
        conns[v].send('stop')
        kind, value = conns[v].recv()
        if kind == 'error':
            raise RuntimeError(f'{arch}/{v}: counting FLOPs failed:\n{value}')
        peak[v], flops[v] = value
        procs[v].join(30)
    out = {}
    for v in variants:
        med = statistics.median(times[v])
        out[v] = dict(times_s=times[v], median_s=med, images_per_s=args.batch_size / med,
                      idle_rss_mb=idle_rss[v], peak_rss_mb=peak[v], gflops=(
                          flops[v] / 1e9 if flops[v] is not None else None))
    return out


# --------------------------------------------------------------------------------------------
# data pipeline


def _pipeline_rate(data_root: str, pipeline: list, cmid: bool, n: int) -> float:
    dataset = build_dataset(data_root, pipeline, cmid)
    for i in range(min(8, n)):  # warm-up: file cache, lazy imports
        dataset[i % len(dataset)]
    t0 = time.perf_counter()
    for i in range(n):
        dataset[i % len(dataset)]
    return n / (time.perf_counter() - t0)


def pipeline_worker(conn, data_root: str, img_size: int, n: int) -> None:
    # what one data-loader worker runs with: torch 1 thread, OpenCV serial
    import cv2
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    try:
        cmid = _pipeline_rate(data_root, cmid_pipeline(img_size), True, n)
        byol = _pipeline_rate(data_root, byol_pipeline(img_size), False, n)
        conn.send(('ok', dict(cmid_images_per_s=cmid, byol_images_per_s=byol)))
    except Exception as e:
        import traceback
        conn.send(('error', f'{type(e).__name__}: {e}\n{traceback.format_exc()}'))


def bench_pipeline(args) -> dict:
    ctx = mp.get_context('spawn')
    parent, child = ctx.Pipe()
    p = ctx.Process(target=pipeline_worker,
                    args=(child, args.data_root, args.img_size, args.pipeline_samples))
    p.start()
    kind, value = parent.recv()
    p.join(30)
    if kind == 'error':
        raise RuntimeError(f'pipeline benchmark failed:\n{value}')
    return value


# --------------------------------------------------------------------------------------------
# report


def summarise(results: dict) -> dict:
    """Ratios of every arch: (a)/(b) time and peak RSS, (a) vs the mmpretrain references."""
    for arch, res in results['archs'].items():
        steps = res['steps']
        ratios = {}
        if 'cmid' in steps and 'cmid-min' in steps:
            ratios['cmid_over_min_time'] = steps['cmid']['median_s'] / steps['cmid-min']['median_s']
            ratios['cmid_over_min_peak_rss'] = (steps['cmid']['peak_rss_mb'] /
                                                steps['cmid-min']['peak_rss_mb'])
            if steps['cmid']['gflops'] and steps['cmid-min']['gflops']:
                ratios['cmid_over_min_flops'] = (steps['cmid']['gflops'] /
                                                 steps['cmid-min']['gflops'])
        for ref in ('cmid-joint', 'mocov2', 'byol', 'simmim'):
            if 'cmid' in steps and ref in steps:
                ratios[f'cmid_over_{ref}_time'] = (steps['cmid']['median_s'] /
                                                   steps[ref]['median_s'])
        res['ratios'] = ratios
    pipe = results.get('pipeline')
    if pipe:
        for arch, res in results['archs'].items():
            if 'cmid' in res['steps']:
                res['ratios']['pipeline_over_step_images_per_s'] = (
                    pipe['cmid_images_per_s'] / res['steps']['cmid']['images_per_s'])
    return results


def markdown(results: dict) -> str:
    a = results['args']
    m = results['machine']
    lines = [
        f'# Speed benchmark ({m["date"][:10]})', '',
        f'Machine: {m["cpu_model"]}, {m["cpu_count"]} CPUs; Python {m["python"]}, '
        f'torch {m["torch"]}; '
        f'{a["threads"]} torch threads per step, batch {a["batch_size"]}, {a["img_size"]} px, '
        f'{a["warmup"]} warm-up + {a["reps"]} timed interleaved rounds (medians).', '',
        f'Command: `{results["command"]}`', '']
    for arch, res in results['archs'].items():
        lines += [f'## {arch}', '',
                  '| step | median s/step | images/s | peak RSS (MB) | GFLOP/step | '
                  'all times (s) |',
                  '|---|---:|---:|---:|---:|---|']
        for v, s in res['steps'].items():
            gflops = f'{s["gflops"]:.0f}' if s['gflops'] else '-'
            lines.append(f'| {v} | {s["median_s"]:.3f} | {s["images_per_s"]:.2f} | '
                         f'{s["peak_rss_mb"]:.0f} | {gflops} | '
                         f'{", ".join(f"{t:.2f}" for t in s["times_s"])} |')
        lines += ['', '| ratio | value | target |', '|---|---:|---:|']
        tgt = {'cmid_over_min_time': f'<= {TARGETS["step_ratio"]}',
               'cmid_over_min_peak_rss': f'<= {TARGETS["rss_ratio"]}',
               'pipeline_over_step_images_per_s': f'>= {TARGETS["pipeline_ratio"]}'}
        for k, val in res['ratios'].items():
            lines.append(f'| {k} | {val:.3f} | {tgt.get(k, "")} |')
        lines.append('')
    pipe = results.get('pipeline')
    if pipe:
        lines += ['## Data pipeline (one single-threaded worker)', '',
                  f'CMID train pipeline: {pipe["cmid_images_per_s"]:.1f} images/s; '
                  f'mmpretrain BYOL pipeline: {pipe["byol_images_per_s"]:.1f} images/s '
                  f'({a["pipeline_samples"]} images of {a["data_root"]}).', '']
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    sys.path.insert(0, REPO)
    from cmid_mm.utils.machine import machine_info
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from report_paths import portable, portable_args
    results = dict(
        command=' '.join(portable_args(['python', osp.abspath(__file__)]
                                       + list(argv or sys.argv[1:]))),
        args={k: portable(v) for k, v in vars(args).items()}, machine=machine_info(), archs={})
    for arch in args.archs:
        print(f'{arch}: building {len(args.variants)} workers', flush=True)
        results['archs'][arch] = dict(steps=bench_arch(arch, args))
    if args.pipeline_samples:
        print('data pipeline', flush=True)
        results['pipeline'] = bench_pipeline(args)
    summarise(results)
    text = markdown(results)
    with open(osp.join(args.out_dir, 'speed.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.out_dir, 'speed.md'), 'w') as f:
        f.write(text + '\n')
    print(text)
    print(f'written: {args.out_dir}/speed.json, speed.md')


if __name__ == '__main__':
    main()
