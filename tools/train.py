"""Train any cmid_mm config: CMID pretraining (mmpretrain scope) or a downstream task
(mmseg / mmdet scopes). The config's ``default_scope`` and ``custom_imports`` decide which
toolbox builds the modules; this script only merges the command line into the config.

    python tools/train.py configs/cmid_demo_resnet18_rs-sample.py
    python tools/train.py CONFIG --work-dir DIR --resume auto --cfg-options a.b=1
"""
import argparse
import ctypes
import os
import os.path as osp
import signal
import sys
import warnings

# Run from a checkout without installing: make `import cmid_mm` find the repo.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from cmid_mm.engine import build_runner  # noqa: E402
from cmid_mm.utils.checkpoint_guard import find_resumable_checkpoint  # noqa: E402
from cmid_mm.utils import (fix_dataloaders, load_config,  # noqa: E402
                           prepare_cpu_distributed, release_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with a cmid_mm config')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or (no value / "auto") from the latest '
        'complete checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision training: float16 + loss scaling on a GPU, '
                        'bfloat16 autocast on a CPU with AVX512-BF16 / AMX, else float32')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='do not pin memory in the data loaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='do not use persistent workers in the data loaders')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs such as '
        'train_dataloader.batch_size=8 model.backbone.depth=18')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local_rank, torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Merge command-line arguments into ``cfg`` (same semantics as mmpretrain's train.py)."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    # Mixed precision. On a GPU: float16 autocast + dynamic loss scaling (AmpOptimWrapper).
    # On a CPU-only machine, --amp trains with bfloat16 autocast (no loss scaling needed) if
    # the CPU has native bfloat16 (AVX512-BF16 / AMX); otherwise, and for configs that ask
    # for AmpOptimWrapper without --amp, in float32 with a warning.
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper' \
            and not torch.cuda.is_available():
        from cmid_mm.engine.optimizers import cpu_bf16_supported
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
        bf16 = cpu_bf16_supported()
        if args.amp and bf16:
            cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
            cfg.optim_wrapper.dtype = 'bfloat16'
        else:
            hint = ('pass --amp to train with bfloat16 autocast on this CPU (it has native '
                    'bfloat16)' if bf16 else 'this CPU has no native bfloat16 (AVX512-BF16 / '
                    'AMX) either, where --amp would use bfloat16 autocast')
            warnings.warn('AMP needs a GPU and none is available: training in float32 '
                          f'(optim_wrapper.type AmpOptimWrapper -> OptimWrapper); {hint}.')
            cfg.optim_wrapper.type = 'OptimWrapper'

    # A Slurm job that was requeued (preemption, `scontrol requeue`) resumes by itself, however
    # it was launched: tools/slurm_train.sh, a plain srun, or `mim train --launcher slurm`.
    if int(os.environ.get('SLURM_RESTART_COUNT', '0') or 0) > 0 and args.launcher == 'slurm':
        args.resume = 'auto'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise KeyError(f'--auto-scale-lr was given but {args.config} has no `auto_scale_lr` '
                           'field: add auto_scale_lr = dict(base_batch_size=..., enable=False).')
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # After --cfg-options, so that e.g. num_workers=0 from the command line is seen here.
    fix_dataloaders(cfg, args.no_pin_memory, args.no_persistent_workers)
    return cfg


def workers_die_with_trainer() -> None:
    """Linux: every process forked from here later (the data-loader workers) gets SIGKILL
    when the trainer dies.

    A trainer stopped by a signal (SIGTERM from torchrun when another rank fails, from Slurm on
    cancel or time-out; SIGKILL) does not stop its workers, and a worker whose batch is still
    waiting in the full result pipe then blocks forever at exit, holding its memory: 2 of 4
    SIGTERMed demo runs left workers behind (docs/scale.md).
    """
    if not sys.platform.startswith('linux') or getattr(workers_die_with_trainer, 'on', False):
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    os.register_at_fork(after_in_child=lambda: prctl(1, signal.SIGKILL))  # PR_SET_PDEATHSIG
    workers_die_with_trainer.on = True


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(load_config(args.config), args)
    prepare_cpu_distributed(cfg, args.launcher)
    if args.resume == 'auto':  # the newest *complete* checkpoint, not blindly last_checkpoint
        cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    workers_die_with_trainer()
    runner = build_runner(cfg)
    runner.train()
    if args.launcher != 'none':
        release_distributed(runner)


if __name__ == '__main__':
    main()
