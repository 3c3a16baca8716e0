"""Speed and memory of a CMID training step against the backbone-only minimum and mmpretrain's
own MoCo-v2 / BYOL / SimMIM steps, plus data-pipeline throughput (issue 6, part 1).

    python projects/benchmarks/benchmark_speed.py                        # R50 + Swin-T, 224 px
    python projects/benchmarks/benchmark_speed.py --archs resnet50 --batch-size 8 --reps 5
    python projects/benchmarks/benchmark_speed.py --archs swin-b --variants cmid cmid-min
    python projects/benchmarks/benchmark_speed.py --variants cmid cmid-bf16 --ab-rev main

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
* ``simmim`` (Swin only): mmpretrain's ``SimMIM`` (one masked view, AdamW);
* ``cmid-bf16`` / ``cmid-min-bf16``: ``cmid`` / ``cmid-min`` under bfloat16 autocast, as
  ``tools/train.py --amp`` trains on a CPU with native bfloat16 (AVX512-BF16 / AMX);
* ``cmid@REV`` (with ``--ab-rev REV``): the full CMID step of another git revision of this
  repository (its ``cmid_mm`` and configs, extracted with ``git archive`` into a temporary
  folder), in float32: "new vs main" is ``--ab-rev main``, or a commit hash.

Each variant lives in its own worker process (built once; workers step one at a time, so they
never compete for the cores), which makes ``ru_maxrss`` of the worker the true peak RSS of
that variant. Every worker gets the same batch: ``--batch-size`` images of ``data/rs_sample``
through the real CMID train pipeline of this tree (224 px views, masks, crop boxes), built
once and sent to each worker. All models start from the same seed, so the losses of the
first step (same weights, same batch) compare the numerics of the variants: ``cmid`` vs
``cmid@REV`` (float32 vs float32) and ``cmid`` vs ``cmid-bf16``.

Other processes: for every timed step the CPU time the rest of the machine used meanwhile
(``/proc/stat`` minus the worker's own) is recorded, in cores; ``--max-foreign 0.15`` measures
a step again when more was busy, ``--quiet-wait`` waits for a quiet machine before each step.

``--profile`` adds one profiled step per variant after the timed rounds (``torch.profiler``,
not timed): the time of the step's parts (EMA, optimizer step, backward, heads and losses)
and the operators with the most self CPU time.

The data pipeline is timed in one single-threaded process (what one data-loader worker does):
the full CMID train pipeline (decode, two views, two masks, pack) and mmpretrain's BYOL
pipeline, both at 224 px on the same files, images/s per worker. The ratio to the CMID
training step's images/s tells how many workers keep one trainer busy.

Results: printed, and written to ``--out-dir`` as ``speed.json`` and ``speed.md``.
"""
import argparse
import io
import json
import multiprocessing as mp
import os
import os.path as osp
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

ARCHS = {
    # name: (CMID model base config, backbone overrides, last-stage channels)
    'resnet50': ('configs/_base_/models/cmid_resnet50.py', dict(depth=50), 2048),
    'resnet18': ('configs/_base_/models/cmid_resnet50.py', dict(depth=18), 512),
    'swin-t': ('configs/_base_/models/cmid_swin_base.py', dict(arch='tiny'), 768),
    'swin-b': ('configs/_base_/models/cmid_swin_base.py', dict(arch='base'), 1024),
}
VARIANTS = ('cmid', 'cmid-min', 'cmid-joint', 'mocov2', 'byol', 'simmim', 'cmid-bf16',
            'cmid-min-bf16')
DEFAULT_VARIANTS = ('cmid', 'cmid-min', 'cmid-joint', 'mocov2', 'byol', 'simmim')
# issue 6: (a)/(b) time and RSS, pipeline; issue 14: (a)/(b) time, new vs an older revision
TARGETS = dict(step_ratio=1.05, rss_ratio=1.3, pipeline_ratio=3.0, ab_speedup=1.2,
               ab_rss_ratio=1.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=['resnet50', 'swin-t'],
                        choices=sorted(ARCHS), help='backbones to measure')
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                        choices=VARIANTS, help='steps to measure (simmim only runs for Swin)')
    parser.add_argument('--ab-rev', metavar='REV',
                        help='also measure the full CMID step (float32) of this git revision '
                        'of the repository, interleaved with the others (e.g. main, d96d6e6)')
    parser.add_argument('--profile', action='store_true',
                        help='one extra profiled step per variant: parts of the step and the '
                        'top operators (torch.profiler)')
    parser.add_argument('--profile-rows', type=int, default=15,
                        help='operators listed per profiled variant')
    parser.add_argument('--max-foreign', type=float, default=None, metavar='CORES',
                        help='shared machine: measure a timed step again (up to --retries '
                        'times) if other processes used more than CORES cores during it '
                        '(from /proc/stat minus the worker\'s own CPU time), e.g. 0.15; the '
                        'value of every kept step is recorded either way')
    parser.add_argument('--retries', type=int, default=3,
                        help='re-measurements per step with --max-foreign')
    parser.add_argument('--quiet-wait', type=float, default=0.0, metavar='S',
                        help='with --max-foreign: before each step wait up to S seconds '
                        'for other processes to use at most that many cores')
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
    if any(v.endswith('-bf16') for v in args.variants):
        sys.path.insert(0, REPO)
        from cmid_mm.engine.optimizers import cpu_bf16_supported
        if not cpu_bf16_supported():
            parser.error('the -bf16 variants need a CPU with native bfloat16 (AVX512-BF16 or '
                         'AMX): this one has neither, and emulated bfloat16 is slower than '
                         'float32')
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


def cmid_optim_cfg(bf16: bool = False) -> dict:
    """The recipe's optimizer (Adan, paramwise rules) in float32 (CPU), or with bfloat16
    autocast as ``tools/train.py --amp`` sets it up on a CPU."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/schedules/adan_coslr-warmup10e_200e.py'))
    optim = cfg.optim_wrapper.to_dict()
    optim['type'] = 'CPUAutocastOptimWrapper' if bf16 else 'OptimWrapper'
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
        # the memory layout the full step gives its backbones (channels-last for ResNet)
        layout = (torch.channels_last if getattr(model, 'channels_last', False)
                  else torch.contiguous_format)
        with self.optim_wrapper.optim_context(model):  # autocast for the bf16 variant
            data = model.data_preprocessor(data, True)
            views, samples = data['inputs'], data['data_samples']
            masks = torch.stack([ds.mask for ds in samples])
            with torch.no_grad():
                t_feats = [model.teacher.module.backbone(
                    v.contiguous(memory_format=layout))[-1] for v in views]
            loss = 0.
            for v, view in enumerate(views):
                mask = masks[:, v]
                masked = mean_fill(view, upsample_mask(mask, view.shape[-2:]))
                feat = model.backbone(masked.contiguous(memory_format=layout), mask)[-1]
                loss = loss + feat.float().mean()
        self.optim_wrapper.update_params(loss)
        return dict(loss=float(loss))


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
        optim_cfg = cmid_optim_cfg(bf16=variant.endswith('-bf16'))
        if variant.startswith('cmid-min'):
            return MinimumStep(model, optim_cfg)
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
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


PARTS = (  # (label, attribute path on the step's model / optim wrapper, method)
    ('teacher EMA', 'model.teacher', 'update_parameters'),
    ('backward', 'optim_wrapper', 'backward'),
    ('optimizer step', 'optim_wrapper.optimizer', 'step'),
    ('MIM head + losses (fwd)', 'model.mim_head', 'loss'),
    ('global InfoNCE (fwd)', 'model.global_head', 'loss'),
    ('local neck (fwd)', 'model.local_neck', 'forward'),
    ('local DINO loss (fwd)', 'model.local_head', 'loss'),
)


def _step_objects(step) -> dict:
    """The model and optim wrapper a step closure or MinimumStep works with."""
    if isinstance(step, MinimumStep):
        return dict(model=step.model, optim_wrapper=step.optim_wrapper)
    found = {}
    for cell in step.__closure__ or ():
        obj = cell.cell_contents
        if hasattr(obj, 'update_params'):
            found['optim_wrapper'] = obj
        elif hasattr(obj, 'train_step'):
            found['model'] = obj
    return found


def profile_step(step, data, args) -> dict:
    """One step under torch.profiler: ms of each part of :data:`PARTS` (CPU time including
    children) and the top operators by self CPU time."""
    import functools
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function
    objects = _step_objects(step)
    patched = []
    for label, path, method in PARTS:
        obj = objects.get(path.split('.')[0])
        for attr in path.split('.')[1:]:
            obj = getattr(obj, attr, None)
        if obj is None or not hasattr(obj, method):
            continue
        original = getattr(obj, method)

        def timed(*a, _f=original, _label=label, **k):
            with record_function(f'part: {_label}'):
                return _f(*a, **k)
        setattr(obj, method, functools.wraps(original)(timed))
        patched.append((obj, method))
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            step(data)
            total = time.perf_counter() - t0
    finally:
        for obj, method in patched:
            delattr(obj, method)  # the instance attribute hid the class method
    events = prof.key_averages()
    parts = {e.key[len('part: '):]: e.cpu_time_total / 1e3 for e in events
             if e.key.startswith('part: ')}
    ops = sorted((e for e in events if not e.key.startswith('part: ')),
                 key=lambda e: -e.self_cpu_time_total)[:args.profile_rows]
    return dict(step_ms=total * 1e3, parts_ms=parts,
                top_ops=[dict(name=e.key, self_ms=e.self_cpu_time_total / 1e3, calls=e.count)
                         for e in ops])


def use_tree(root: str) -> None:
    """Make this process import ``cmid_mm`` and read configs from the tree at ``root``."""
    global REPO
    REPO = root
    sys.path.insert(0, root)
    import cmid_mm
    if osp.dirname(osp.dirname(osp.abspath(cmid_mm.__file__))) != osp.abspath(root):
        raise RuntimeError(f'cmid_mm was imported from {cmid_mm.__file__}, not from {root}')


def extract_rev(rev: str) -> tuple:
    """``(folder, commit)``: ``cmid_mm/`` and ``configs/`` of git revision ``rev`` of this
    repository, extracted with ``git archive`` into a new temporary folder (the repository's
    own state is not touched)."""
    proc = subprocess.run(['git', '-C', REPO, 'rev-parse', '--verify', '--quiet',
                           f'{rev}^{{commit}}'], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f'--ab-rev {rev!r} is not a commit of the git repository {REPO} '
                         '(give a branch, tag or hash that `git log` shows)')
    commit = proc.stdout.strip()
    proc = subprocess.run(['git', '-C', REPO, 'archive', '--format=tar', commit, 'cmid_mm',
                           'configs'], capture_output=True)
    if proc.returncode:
        raise SystemExit(f'git archive {commit} failed: {proc.stderr.decode()[-500:]}')
    folder = tempfile.mkdtemp(prefix=f'benchmark_ab_{commit[:8]}_')
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(folder, filter='data')
    return folder, commit


def worker(conn, variant: str, arch: str, args, batch, root: str) -> None:
    import torch
    die_with_parent()
    use_tree(root)
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
        import pickle
        batch = pickle.loads(batch)  # after use_tree: classes resolve in the tree measured
        step = build_step(variant.partition('@')[0], arch, args.img_size)
        data = adapt_batch(variant, batch)
        conn.send(('ready', (rss_mb(), batch_digest(batch))))
        losses = []
        while (command := conn.recv()) == 'step':
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            out = step(data)
            conn.send(('time', (time.perf_counter() - t0, _cpu_seconds() - cpu0)))
            losses.append({k: float(v) for k, v in out.items() if 'loss' in k}
                          if isinstance(out, dict) else {})
        profile = profile_step(step, data, args) if command == 'profile' else None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send(('peak', (peak, count_flops(step, data) if args.flops else None, losses,
                            profile)))
    except EOFError:  # the benchmark process went away
        return
    except Exception as e:  # report and exit: the parent names the variant
        import traceback
        conn.send(('error', f'{type(e).__name__}: {e}\n{traceback.format_exc()}'))


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def busy_cpu_seconds() -> float:
    """CPU time all processes of the machine have used since boot (Linux /proc/stat; 0.0
    elsewhere, which turns the other-process accounting off)."""
    try:
        with open('/proc/stat') as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def wait_for_quiet(args) -> float:
    """With ``--max-foreign``: wait (up to ``--quiet-wait`` s) until other processes use at
    most that many cores over 2 s. Returns the seconds waited."""
    if args.max_foreign is None or not args.quiet_wait:
        return 0.0
    t0 = time.perf_counter()
    while True:
        busy0, w0 = busy_cpu_seconds(), time.perf_counter()
        time.sleep(2.0)
        if (busy_cpu_seconds() - busy0) / (time.perf_counter() - w0) <= args.max_foreign or \
                time.perf_counter() - t0 > args.quiet_wait:
            return time.perf_counter() - t0


def bench_arch(arch: str, args, batch: bytes, rev: tuple = None) -> dict:
    """Interleaved step timing of every variant for one backbone.

    Args:
        batch: the pickled batch every worker trains on.
        rev: ``(name, folder)`` of the ``--ab-rev`` tree, whose full CMID step is measured
            as variant ``cmid@name``.
    """
    variants = [v for v in args.variants if v != 'simmim' or 'swin' in arch]
    roots = {v: REPO for v in variants}
    if rev is not None:
        variants.append(f'cmid@{rev[0]}')
        roots[variants[-1]] = rev[1]
    ctx = mp.get_context('spawn')
    procs, conns, idle_rss, digests = {}, {}, {}, set()
    for v in variants:  # built one after the other: no competition for the cores
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(child, v, arch, args, batch, roots[v]),
                        daemon=True)
        p.start()
        kind, value = parent.recv()
        if kind == 'error':
            raise RuntimeError(f'{arch}/{v}: building the step failed:\n{value}')
        procs[v], conns[v], (idle_rss[v], digest) = p, parent, value
        digests.add(digest)
    if len(digests) != 1:
        raise RuntimeError(f'{arch}: the workers received different batches ({digests})')
    times = {v: [] for v in variants}
    foreign = {v: [] for v in variants}
    waited = 0.0
    for r in range(args.warmup + args.reps):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            for attempt in range(args.retries + 1):
                waited += wait_for_quiet(args)
                busy0 = busy_cpu_seconds()
                conns[v].send('step')
                kind, value = conns[v].recv()
                if kind == 'error':
                    raise RuntimeError(f'{arch}/{v}: the step failed:\n{value}')
                wall, cpu = value
                # CPU time other processes used during the step, in cores
                other = max(busy_cpu_seconds() - busy0 - cpu, 0.0) / wall
                if r < args.warmup or args.max_foreign is None or other <= args.max_foreign:
                    break
                print(f'    {v}: {other:.2f} cores busy with other processes during the '
                      f'step ({wall:.2f} s): measuring again', flush=True)
            if r >= args.warmup:
                times[v].append(wall)
                foreign[v].append(other)
        print(f'  {arch} round {r + 1}/{args.warmup + args.reps}' +
              (' (warm-up)' if r < args.warmup else '') + ': ' +
              ', '.join(f'{v} {times[v][-1]:.2f}s' for v in variants if r >= args.warmup),
              flush=True)
    out = {}
    for v in variants:  # one after the other: profiles and FLOP counts do not compete either
        if args.profile:
            waited += wait_for_quiet(args)
        conns[v].send('profile' if args.profile else 'stop')
        kind, value = conns[v].recv()
        if kind == 'error':
            raise RuntimeError(f'{arch}/{v}: profiling / counting FLOPs failed:\n{value}')
        peak, flops, losses, profile = value
        procs[v].join(30)
        med = statistics.median(times[v])
        out[v] = dict(times_s=times[v], median_s=med, min_s=min(times[v]),
                      images_per_s=args.batch_size / med,
                      other_processes_cores=foreign[v], waited_for_quiet_s=waited,
                      idle_rss_mb=idle_rss[v], peak_rss_mb=peak,
                      gflops=flops / 1e9 if flops is not None else None,
                      first_step_losses=losses[0] if losses else {})
        if profile is not None:
            out[v]['profile'] = profile
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


def _paired(slow: dict, fast: dict) -> float:
    """Median over the rounds of (time of ``slow`` / time of ``fast``) in the same round:
    drifts of the machine that last longer than a round cancel."""
    return statistics.median(s / f for s, f in zip(slow['times_s'], fast['times_s']))


def _loss_diff(a: dict, b: dict) -> dict:
    """Relative difference |a - b| / |b| of each first-step loss the two steps share."""
    return {k: abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in sorted(set(a) & set(b))}


def summarise(results: dict) -> dict:
    """Ratios of every arch: (a)/(b) time and peak RSS, (a) vs the mmpretrain references,
    bfloat16 vs float32, this tree vs the ``--ab-rev`` revision (ratio of the medians, and
    ``_paired``: median of the per-round ratios); first-step loss differences."""
    for arch, res in results['archs'].items():
        steps = res['steps']
        ratios, diffs = {}, {}
        for full, minimum, key in (('cmid', 'cmid-min', 'cmid_over_min'),
                                   ('cmid-bf16', 'cmid-min-bf16', 'bf16_cmid_over_min')):
            if full in steps and minimum in steps:
                ratios[f'{key}_time'] = steps[full]['median_s'] / steps[minimum]['median_s']
                ratios[f'{key}_peak_rss'] = (steps[full]['peak_rss_mb'] /
                                             steps[minimum]['peak_rss_mb'])
                if steps[full]['gflops'] and steps[minimum]['gflops']:
                    ratios[f'{key}_flops'] = steps[full]['gflops'] / steps[minimum]['gflops']
        for ref in ('cmid-joint', 'mocov2', 'byol', 'simmim'):
            if 'cmid' in steps and ref in steps:
                ratios[f'cmid_over_{ref}_time'] = (steps['cmid']['median_s'] /
                                                   steps[ref]['median_s'])
        if 'cmid' in steps and 'cmid-bf16' in steps:
            ratios['bf16_speedup'] = steps['cmid']['median_s'] / steps['cmid-bf16']['median_s']
            ratios['bf16_speedup_paired'] = _paired(steps['cmid'], steps['cmid-bf16'])
            ratios['bf16_over_fp32_peak_rss'] = (steps['cmid-bf16']['peak_rss_mb'] /
                                                 steps['cmid']['peak_rss_mb'])
            diffs['cmid-bf16 vs cmid'] = _loss_diff(steps['cmid-bf16']['first_step_losses'],
                                                    steps['cmid']['first_step_losses'])
        for v in steps:
            if v.startswith('cmid@') and 'cmid' in steps:
                rev = v.partition('@')[2]
                ratios[f'speedup_over_{rev}'] = steps[v]['median_s'] / steps['cmid']['median_s']
                ratios[f'speedup_over_{rev}_paired'] = _paired(steps[v], steps['cmid'])
                ratios[f'peak_rss_over_{rev}'] = (steps['cmid']['peak_rss_mb'] /
                                                  steps[v]['peak_rss_mb'])
                diffs[f'cmid vs {v}'] = _loss_diff(steps['cmid']['first_step_losses'],
                                                   steps[v]['first_step_losses'])
        res['ratios'] = ratios
        if diffs:
            res['first_step_loss_rel_diff'] = diffs
    pipe = results.get('pipeline')
    if pipe:
        for arch, res in results['archs'].items():
            if 'cmid' in res['steps']:
                res['ratios']['pipeline_over_step_images_per_s'] = (
                    pipe['cmid_images_per_s'] / res['steps']['cmid']['images_per_s'])
    return results


LOSS_KEYS = ('loss_rec', 'loss_global', 'loss_local')


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
    if results.get('ab_rev'):
        lines[-1:-1] = [f'A/B: `cmid@{results["ab_rev"]["rev"]}` is commit '
                        f'{results["ab_rev"]["commit"]}.', '']
    for arch, res in results['archs'].items():
        lines += [f'## {arch}', '',
                  '| step | median s/step | images/s | peak RSS (MB) | GFLOP/step | '
                  'all times (s) | other processes (cores, max) |',
                  '|---|---:|---:|---:|---:|---|---:|']
        for v, s in res['steps'].items():
            gflops = f'{s["gflops"]:.0f}' if s['gflops'] else '-'
            other = s.get('other_processes_cores') or []
            lines.append(f'| {v} | {s["median_s"]:.3f} | {s["images_per_s"]:.2f} | '
                         f'{s["peak_rss_mb"]:.0f} | {gflops} | '
                         f'{", ".join(f"{t:.2f}" for t in s["times_s"])} | '
                         f'{max(other):.2f} |' if other else '- |')
        lines += ['', '| ratio | value | target |', '|---|---:|---:|']
        tgt = {'cmid_over_min_time': f'<= {TARGETS["step_ratio"]}',
               'cmid_over_min_peak_rss': f'<= {TARGETS["rss_ratio"]}',
               'pipeline_over_step_images_per_s': f'>= {TARGETS["pipeline_ratio"]}'}
        for k, val in res['ratios'].items():
            target = tgt.get(k, '')
            if k.startswith('speedup_over_') and not k.endswith('_paired'):
                target = f'>= {TARGETS["ab_speedup"]}'
            elif k.startswith('peak_rss_over_'):
                target = f'<= {TARGETS["ab_rss_ratio"]}'
            lines.append(f'| {k} | {val:.3f} | {target} |')
        lines.append('')
        if res.get('first_step_loss_rel_diff'):
            lines += ['First step (same initial weights, same batch), relative loss '
                      'differences:', '', '| pair | ' + ' | '.join(LOSS_KEYS) + ' |',
                      '|---|' + '---:|' * len(LOSS_KEYS)]
            for pair, d in res['first_step_loss_rel_diff'].items():
                lines.append(f'| {pair} | ' + ' | '.join(
                    f'{d[k]:.2e}' if k in d else '-' for k in LOSS_KEYS) + ' |')
            lines.append('')
        for v, s in res['steps'].items():
            prof = s.get('profile')
            if not prof:
                continue
            lines += [f'Profile of one `{v}` step ({prof["step_ms"]:.0f} ms under the '
                      'profiler): ' + ', '.join(f'{k} {ms:.0f} ms'
                                                for k, ms in prof['parts_ms'].items()), '',
                      '| operator | self CPU ms | calls |', '|---|---:|---:|']
            lines += [f'| {o["name"]} | {o["self_ms"]:.0f} | {o["calls"]} |'
                      for o in prof['top_ops']]
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
    import pickle
    results = dict(
        command=' '.join(portable_args(['python', osp.abspath(__file__)]
                                       + list(argv or sys.argv[1:]))),
        args={k: portable(v) for k, v in vars(args).items()}, machine=machine_info(), archs={})
    results['machine']['loadavg_start'] = os.getloadavg()
    batch = pickle.dumps(make_batch(args))  # one batch for every worker
    rev = None
    if args.ab_rev:
        folder, commit = extract_rev(args.ab_rev)
        rev = (args.ab_rev, folder)
        results['ab_rev'] = dict(rev=args.ab_rev, commit=commit)
    try:
        for arch in args.archs:
            print(f'{arch}: building {len(args.variants) + bool(rev)} workers', flush=True)
            results['archs'][arch] = dict(steps=bench_arch(arch, args, batch, rev))
    finally:
        if rev is not None:
            shutil.rmtree(rev[1], ignore_errors=True)
    results['machine']['loadavg_end'] = os.getloadavg()
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
