"""Where do the first bits of a CMID training step differ between CPU kernel settings?
(issue 18, part 1: why the same seed trains differently on another machine of our kind.)

    python projects/benchmarks/first_divergence.py                    # demo R18, default settings
    python projects/benchmarks/first_divergence.py --arch swin-t      # Swin-T student/teacher
    python projects/benchmarks/first_divergence.py --settings native: \\
        'pin:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,MKL_CBWR=AVX2'
    python projects/benchmarks/first_divergence.py --threads 2 --train-iters 5  # as the study:
                                           # 2 threads, + short tools/train.py runs per setting

Each *setting* is a set of environment variables (``NAME:VAR=VAL,VAR=VAL``) that choose the
CPU kernels without changing the code, so one machine can emulate another CPU:

* ``ATEN_CPU_CAPABILITY`` (default / avx2 / avx512): ATen's vectorised kernels (elementwise
  ops, reductions, BatchNorm, softmax, ...), normally the best the CPU supports;
* ``ONEDNN_MAX_CPU_ISA`` (e.g. AVX2, AVX512_CORE): the ISA cap of oneDNN, which runs float32
  convolutions (``ONEDNN_VERBOSE=1`` shows the kernels, e.g. ``jit:avx512_core``);
* ``MKL_ENABLE_INSTRUCTIONS`` (AVX2, AVX512): the ISA cap of MKL (matmuls, linear layers);
  ``MKL_CBWR`` (AVX2, COMPATIBLE, ...): MKL's conditional numerical reproducibility mode
  (``MKL_VERBOSE=1`` prints ``CNR:...`` per call);
* ``OMP_NUM_THREADS``: the thread count (splits reductions); ``--threads`` (default 1) unless
  a setting sets it;
* ``OPENCV_CPU_DISABLE`` / ``NPY_DISABLE_CPU_FEATURES``: OpenCV's and numpy's own SIMD
  dispatch (the data pipeline);
* ``FD_DISABLE_MKLDNN=1`` (this script's own switch): ``torch.backends.mkldnn.enabled = False``
  in every Python process of the setting (a ``sitecustomize.py`` put on ``PYTHONPATH``), so
  convolutions run ATen's im2col + MKL GEMM (MKL_CBWR applies) instead of oneDNN.

For every setting a fresh subprocess builds the model with a fixed seed, builds one batch of
real images (``data/rs_sample``) through the config's train pipeline, runs ONE forward +
backward (``model.loss`` + ``backward``) and records every module's forward output (forward
hooks, in call order), the losses and every parameter gradient. The parent reports, against
the first setting (the reference), whether the batch is bit-identical, the first module whose
output differs bitwise (max abs difference there, and "rel" = max abs difference / max abs
value of that output in the reference), the loss difference and how many gradients differ
(and the largest "rel" over them); then groups the settings into classes of bit-identical
results (initial weights, batch, every module output, every gradient).

``--train-iters N`` also runs ``tools/train.py`` on the demo config for ``N`` iterations
(``num_workers=0``, batch 16, the first ``16 N`` images of ``data/rs_sample``, so N <= 5)
under every setting, compares the logged losses (``vis_data/scalars.json``) and the final
weights bit for bit, and reports the median s/iter (wall-clock; rough on a shared machine).
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)
from cmid_mm.utils.machine import KERNEL_ENV  # noqa: E402
DEMO = 'configs/cmid_demo_resnet18_rs-sample.py'
SWIN_BASE = 'configs/_base_/models/cmid_swin_base.py'

# name: environment (OMP_NUM_THREADS=--threads is added unless the setting sets it)
DEFAULT_SETTINGS = [
    'native:',  # this machine's own choice (OMP_NUM_THREADS=--threads)
    'threads1:OMP_NUM_THREADS=1',
    'threads2:OMP_NUM_THREADS=2',
    'aten-avx2:ATEN_CPU_CAPABILITY=avx2',
    'aten-default:ATEN_CPU_CAPABILITY=default',
    'onednn-avx512:ONEDNN_MAX_CPU_ISA=AVX512_CORE',
    'onednn-avx2:ONEDNN_MAX_CPU_ISA=AVX2',
    'mkl-avx2:MKL_ENABLE_INSTRUCTIONS=AVX2',
    'mkl-cnr-avx2:MKL_CBWR=AVX2',
    'mkl-cnr-compat:MKL_CBWR=COMPATIBLE',
    'cv2-sse3:OPENCV_CPU_DISABLE=AVX512-SKX,AVX512F,AVX2,FMA3,AVX,SSE4.1,SSE4.2,POPCNT,FP16',
    'numpy-sse42:NPY_DISABLE_CPU_FEATURES=AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL '
    'AVX512_ICL AVX2 FMA3 F16C AVX',
    'no-onednn:FD_DISABLE_MKLDNN=1',
    # another CPU: AVX2 only (e.g. EPYC Zen 2/3)
    'cpu-avx2:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,MKL_ENABLE_INSTRUCTIONS=AVX2',
    # the pins (on an AVX2-only CPU they are the same environment: the caps are minima)
    'pin:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,MKL_CBWR=AVX2',
    'pin-threads1:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,MKL_CBWR=AVX2,'
    'OMP_NUM_THREADS=1',
    'pin-compat:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,MKL_CBWR=COMPATIBLE',
    'pin-no-onednn:ATEN_CPU_CAPABILITY=avx2,MKL_CBWR=AVX2,FD_DISABLE_MKLDNN=1',
    'pin@cpu-avx2:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,'
    'MKL_ENABLE_INSTRUCTIONS=AVX2,MKL_CBWR=AVX2',
    'pin-no-onednn@cpu-avx2:ATEN_CPU_CAPABILITY=avx2,ONEDNN_MAX_CPU_ISA=AVX2,'
    'MKL_ENABLE_INSTRUCTIONS=AVX2,MKL_CBWR=AVX2,FD_DISABLE_MKLDNN=1',
]
# machine_info's kernel variables, and the data pipeline's SIMD switches and ours
KERNEL_VARS = KERNEL_ENV + ('OPENCV_CPU_DISABLE', 'NPY_DISABLE_CPU_FEATURES',
                            'ONEDNN_DEFAULT_FPMATH_MODE', 'FD_DISABLE_MKLDNN')
# FD_DISABLE_MKLDNN=1 (ours): torch.backends.mkldnn.enabled = False in every Python process of
# the setting (a sitecustomize.py put on PYTHONPATH), so convolutions run ATen's own
# im2col + MKL GEMM instead of oneDNN
SITECUSTOMIZE = '''import os
if os.environ.get('FD_DISABLE_MKLDNN') == '1':
    import torch
    torch.backends.mkldnn.enabled = False
'''


def parse_setting(text: str, threads: int = 1) -> tuple:
    name, sep, rest = text.partition(':')
    if not sep or not name:
        raise SystemExit(f'setting {text!r}: expected NAME:VAR=VAL,VAR=VAL (or NAME: for '
                         'the plain environment)')
    env = {}
    # values may contain commas (OPENCV_CPU_DISABLE=A,B): a piece without '=' continues the
    # previous value
    last = None
    for piece in filter(None, rest.split(',')):
        if '=' in piece:
            key, val = piece.split('=', 1)
            env[key] = val
            last = key
        elif last is not None:
            env[last] += ',' + piece
        else:
            raise SystemExit(f'setting {text!r}: {piece!r} is not VAR=VAL')
    env.setdefault('OMP_NUM_THREADS', str(threads))
    env.setdefault('MKL_NUM_THREADS', env['OMP_NUM_THREADS'])
    return name, env


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--settings', nargs='+', default=DEFAULT_SETTINGS,
                   help='NAME:VAR=VAL,... ; the first one is the reference')
    p.add_argument('--arch', default='resnet18', choices=['resnet18', 'swin-t'],
                   help='resnet18: the demo config; swin-t: its pipeline with the Swin base '
                   'model (arch tiny)')
    p.add_argument('--threads', type=int, default=1,
                   help='OMP_NUM_THREADS of the settings that do not set it (the study: 2)')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--train-iters', type=int, default=0,
                   help='also run tools/train.py for this many iterations per setting')
    p.add_argument('--keep', action='store_true', help='keep the work dir')
    p.add_argument('--work-dir', default=None, help='(default: a temporary directory)')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- worker: one setting, one process -------------------------------------------------------
def build_cfg(arch: str):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    if arch == 'swin-t':
        model = Config.fromfile(osp.join(REPO, SWIN_BASE)).model
        # 128 px views: a 32 x 32 token grid, 4 x 4 in the last stage, so 4 x 4 windows
        model.backbone.update(arch='tiny', img_size=cfg.crop_size, window_size=4)
        ch = 768
        model.mim_head.in_channels = ch
        model.global_neck.update(in_channels=ch, hid_channels=512, out_channels=128)
        model.global_head.update(feat_dim=128, queue_len=1024)
        model.local_neck.update(in_channels=ch, hid_channels=512, bottleneck_channels=128,
                                out_channels=1024)
        model.local_head.update(out_channels=1024, warmup_teacher_temp_epochs=5)
        model.num_matches = 6
        cfg.model = model
    return cfg


def flat_tensors(obj, out):
    import torch
    if isinstance(obj, torch.Tensor):
        out.append(obj.detach().clone())
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            flat_tensors(o, out)
    elif isinstance(obj, dict):
        for k in sorted(obj):
            flat_tensors(obj[k], out)
    return out


def worker(path: str, arch: str, batch_size: int, seed: int) -> None:
    sys.path.insert(0, REPO)
    import torch
    import cmid_mm  # noqa: F401
    from mmengine.dataset import default_collate
    from mmengine.logging import MessageHub
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS, MODELS
    init_default_scope('mmpretrain')
    cfg = build_cfg(arch)
    hub = MessageHub.get_current_instance()
    for k, v in dict(max_iters=100, iter=0, epoch=0, max_epochs=20).items():
        hub.update_info(k, v)

    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = osp.join(REPO, ds_cfg.data_root)
    dataset = DATASETS.build(ds_cfg)
    for t in dataset.pipeline.transforms:
        if hasattr(t, 'set_epoch'):
            t.set_epoch(seed, 0)
    batch = default_collate([dataset[i % len(dataset)] for i in range(batch_size)])
    data_tensors = flat_tensors(batch['inputs'], [])
    for ds in batch['data_samples']:
        data_tensors.append(ds.mask.clone())
        for key in ('crop_bbox', 'flip'):
            if key in ds:
                data_tensors.append(torch.as_tensor(ds.get(key)))

    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}

    records = []
    name_of = {m: n for n, m in model.named_modules()}

    def hook(module, args, output):
        records.append((name_of[module] or '<model>', flat_tensors(output, [])))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    torch.manual_seed(seed)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    for h in handles:
        h.remove()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    torch.save(dict(
        capability=torch.backends.cpu.get_cpu_capability() + (
            '' if torch.backends.mkldnn.enabled else ', no oneDNN'),
        threads=torch.get_num_threads(),
        data=data_tensors, init=init, records=records,
        losses={k: v.detach().clone() for k, v in losses.items()
                if isinstance(v, torch.Tensor)} | {'loss': loss.detach().clone()},
        grads=grads), path)


# --- comparison ------------------------------------------------------------------------------
def diff(a, b) -> tuple:
    """(bitwise equal, max abs diff, max abs diff / max abs value of the reference ``a``)."""
    import torch
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, float('inf'), float('inf')
    if a.numpy().tobytes() == b.numpy().tobytes():  # bitwise, NaNs and -0.0 included
        return True, 0.0, 0.0
    d = float((a.double() - b.double()).abs().max())
    scale = float(a.double().abs().max()) if a.numel() else 0.0
    return False, d, d / scale if scale else float('inf')


def digest(res: dict) -> str:
    h = hashlib.sha1()
    for k in sorted(res['init']):
        h.update(res['init'][k].numpy().tobytes())
    for t in res['data']:
        h.update(t.numpy().tobytes())
    for _, ts in res['records']:
        for t in ts:
            h.update(t.numpy().tobytes())
    for k in sorted(res['grads']):
        h.update(res['grads'][k].numpy().tobytes())
    return h.hexdigest()[:10]


def compare(ref: dict, res: dict) -> dict:
    data_same = len(ref['data']) == len(res['data']) and all(
        diff(a, b)[0] for a, b in zip(ref['data'], res['data']))
    init_same = ref['init'].keys() == res['init'].keys() and all(
        diff(ref['init'][k], res['init'][k])[0] for k in ref['init'])
    first = None
    n_diff = 0
    if [n for n, _ in ref['records']] != [n for n, _ in res['records']]:
        first = ('<call order differs>', float('nan'), float('nan'))
    else:
        for i, ((name, ta), (_, tb)) in enumerate(zip(ref['records'], res['records'])):
            ds = [diff(a, b) for a, b in zip(ta, tb)]
            if len(ta) != len(tb) or not all(d[0] for d in ds):
                n_diff += 1
                if first is None:
                    first = (f'#{i} {name}', max(d[1] for d in ds), max(d[2] for d in ds))
    loss = diff(ref['losses']['loss'], res['losses']['loss'])
    g = [diff(ref['grads'][k], res['grads'][k]) for k in ref['grads']]
    return dict(data_same=data_same, init_same=init_same, first=first, n_modules_diff=n_diff,
                n_calls=len(ref['records']), loss_abs=loss[1], loss_rel=loss[2],
                grads_diff=sum(not d[0] for d in g), n_grads=len(g),
                grad_rel=max(d[2] for d in g))


# --- training runs ---------------------------------------------------------------------------
def train_run(name: str, env: dict, iters: int, seed: int, work: str) -> dict:
    """``tools/train.py`` on the demo config for ``iters`` iterations; ``env``: the full
    environment."""
    run_dir = osp.join(work, 'train', name)
    shutil.rmtree(run_dir, ignore_errors=True)
    opts = [f'randomness.seed={seed}', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1000',
            'train_dataloader.dataset.data_root=' + osp.join(REPO, 'data', 'rs_sample')]
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), osp.join(REPO, DEMO),
           '--work-dir', run_dir, '--cfg-options'] + opts
    # stop after `iters` iterations: a batch size that gives exactly `iters` iterations per
    # epoch would change the step, so cut the epoch with the sampler's dataset length instead
    cmd += [f'train_dataloader.dataset.indices={iters * 16}']
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{name}: training failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}')
    scal = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))[-1]
    rows = [json.loads(line) for line in open(scal)]
    ckpts = sorted(glob.glob(osp.join(run_dir, '*.pth')))
    import torch
    weights = hashlib.sha1()
    if ckpts:
        sd = torch.load(ckpts[-1], map_location='cpu', weights_only=False)['state_dict']
        for k in sorted(sd):
            weights.update(sd[k].numpy().tobytes())
        for c in ckpts:
            os.remove(c)
    times = [r['time'] for r in rows if 'time' in r][1:]
    return dict(losses=[{k: v for k, v in r.items() if k.startswith('loss')} for r in rows
                        if 'loss' in r],
                weights=weights.hexdigest()[:10] if ckpts else None,
                s_per_iter=statistics.median(times) if times else None,
                wall=time.time() - t0)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker, args.arch, args.batch_size, args.seed)
    import torch
    settings = [parse_setting(s, args.threads) for s in args.settings]
    names = [n for n, _ in settings]
    if len(set(names)) != len(names):
        raise SystemExit(f'setting names must be unique: {names}')
    n_images = len(os.listdir(osp.join(REPO, 'data', 'rs_sample', 'images')))
    if args.train_iters * 16 > n_images:
        raise SystemExit(f'--train-iters {args.train_iters}: data/rs_sample has {n_images} '
                         f'images, {n_images // 16} iterations of 16 at most')
    work = args.work_dir or tempfile.mkdtemp(prefix='first_divergence_')
    os.makedirs(work, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARS}
    site = osp.join(work, '_site')
    os.makedirs(site, exist_ok=True)
    with open(osp.join(site, 'sitecustomize.py'), 'w') as f:
        f.write(SITECUSTOMIZE)
    base_env['PYTHONPATH'] = os.pathsep.join(
        [site] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    print(f'# {args.arch}, batch {args.batch_size} x 2 views, seed {args.seed}, '
          f'torch {torch.__version__}; CPU: {cpu_model()}; ISA flags: {cpu_flags()}')
    results = {}
    for name, env in settings:
        out = osp.join(work, f'{name}.pt')
        t0 = time.time()
        proc = subprocess.run(
            [sys.executable, osp.abspath(__file__), '--worker', out, '--arch', args.arch,
             '--batch-size', str(args.batch_size), '--seed', str(args.seed)],
            cwd=REPO, env=dict(base_env, **env), capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f'setting {name} failed:\n{proc.stderr[-4000:]}')
        results[name] = torch.load(out, weights_only=False)
        print(f'  {name}: {time.time() - t0:.1f}s ({results[name]["capability"]}, '
              f'{results[name]["threads"]} thr)', flush=True)

    ref_name = names[0]
    ref = results[ref_name]
    print(f'\n## one forward + backward, against `{ref_name}`\n')
    print('| setting | env | ATen | batch / init same | first differing module (call #) | '
          'max abs | max rel | modules differing | loss rel diff | grads differing | '
          'max grad rel |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name, env in settings:
        c = compare(ref, results[name])
        f = c['first']
        envs = ' '.join(f'{k}={v}' for k, v in env.items()
                        if not (k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS') and v == '1'))
        print(f'| {name} | {envs or "-"} | {results[name]["capability"]} | '
              f'{"yes" if c["data_same"] else "NO"} / {"yes" if c["init_same"] else "NO"} | '
              f'{f[0] if f else "none"} | '
              f'{f[1] if f else 0:.3g} | {f[2] if f else 0:.3g} | '
              f'{c["n_modules_diff"]}/{c["n_calls"]} | {c["loss_rel"]:.3g} | '
              f'{c["grads_diff"]}/{c["n_grads"]} | {c["grad_rel"]:.3g} |')
    classes = {}
    for name in names:
        classes.setdefault(digest(results[name]), []).append(name)
    print('\n## bit-identical classes (data, every module output, every gradient)\n')
    for d, members in classes.items():
        print(f'- {d}: {", ".join(members)}')

    if args.train_iters:
        print(f'\n## tools/train.py, {args.train_iters} iterations (demo config, batch 16, '
              f'seed {args.seed}, num_workers=0)\n')
        runs = {}
        for name, env in settings:
            runs[name] = train_run(name, dict(base_env, **env), args.train_iters, args.seed,
                                   work)
            print(f'  {name}: {runs[name]["wall"]:.0f}s', flush=True)
        ref_run = runs[ref_name]
        print('\n| setting | losses == reference (bitwise) | first differing iteration | '
              'final weights | median s/iter |')
        print('|---|---|---|---|---|')
        for name in names:
            r = runs[name]
            first = next((i + 1 for i, (a, b) in enumerate(zip(ref_run['losses'], r['losses']))
                          if a != b), None)
            same = r['losses'] == ref_run['losses']
            print(f'| {name} | {"yes" if same else "no"} | {first or "-"} | {r["weights"]} | '
                  f'{r["s_per_iter"]:.2f} |')
        print('\nlast logged losses:')
        for name in names:
            print(f'  {name}: {runs[name]["losses"][-1]}')
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


def cpu_model() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown'


def cpu_flags() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('flags'):
                flags = line.split(':', 1)[1].split()
                keep = [f for f in flags if f.startswith(('avx', 'amx', 'fma'))]
                return ' '.join(sorted(keep))
    except OSError:
        pass
    return 'unknown'


if __name__ == '__main__':
    main()
