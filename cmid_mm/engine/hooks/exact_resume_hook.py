"""Make a resumed run continue bit for bit where the interrupted one stopped.

mmengine's resume restores the model (for CMID: weights, the MoCo queue and its pointer, the
DINO centre, the EMA teacher and its step count, BN statistics), the optimizer, the parameter
schedulers, the epoch/iteration counters and the message hub; the data order is a function of
``(seed, epoch)`` (``DefaultSampler``) and the teacher temperature a function of the epoch
(``TeacherTempWarmupHook``). What it does not restore are the global RNG streams (numpy,
``random``, torch) that augmentations and model-side randomness (dropout, drop path) draw from:
they restart from the seed, so a resumed run sees different augmentations from then on.

Instead of saving and restoring stream states (which also depend on the number of data-loader
workers, on which worker got which batch and on anything drawn between a checkpoint and the
next step), this hook makes every draw a pure function of the training position:

* before every epoch it arms the train pipeline's
  :class:`~cmid_mm.datasets.transforms.PerSampleSeed` with ``(seed, epoch)``, so each sample's
  augmentation depends on ``(seed, epoch, sample)`` only (with any number of workers);
* before every epoch and every iteration it reseeds the main process's numpy, ``random`` and
  torch (CPU and CUDA) RNGs from ``(seed, epoch)`` / ``(seed, iteration)``, so model-side
  randomness at iteration ``i`` is the same in an uninterrupted and a resumed run.

It also checks what would silently break an exact continuation: a train pipeline without
``PerSampleSeed`` (warning), a dataset wrapper that repeats samples within an epoch (error:
repeats would be augmented identically), a loop that is not epoch based (error, when
``PerSampleSeed`` is used), a checkpoint taken in the middle of an epoch (warning: mmengine's
``EpochBasedTrainLoop`` restarts that epoch from its first batch), a sampler whose seed is not
the resumed run's seed (fixed: with ``randomness.seed=None`` mmengine builds the sampler with a
fresh random seed before it reads the checkpoint's) and ``max_keep_ckpts=1`` (warning:
mmengine deletes the previous checkpoint before writing the next one, so a crash while writing
leaves nothing to resume from).
"""
from typing import Iterator, List, Optional

from mmengine.dataset import ClassBalancedDataset, RepeatDataset
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from cmid_mm.datasets.transforms.sample_seed import (PerSampleSeed, derive_seed,
                                                    seed_global_rngs)

EPOCH_STREAM = 0xE90C  # tags of the seed sequences (PerSampleSeed uses its own)
ITER_STREAM = 0x17E2


def reseed_global_rngs(*words: int) -> None:
    """Seed numpy's, ``random``'s and torch's global RNGs from integer ``words``."""
    seed_global_rngs(derive_seed(*words))


def _datasets(dataset) -> Iterator:
    """``dataset`` and every dataset it wraps (mmengine's wrappers, torch's ConcatDataset)."""
    yield dataset
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _datasets(inner)
    for child in getattr(dataset, 'datasets', None) or []:
        yield from _datasets(child)


def _transforms(transform) -> Iterator:
    """``transform`` and every transform nested in it (Compose, MultiView, RandomApply...)."""
    yield transform
    inner = getattr(transform, 'transforms', None)
    if isinstance(inner, (list, tuple)):
        for t in inner:
            yield from _transforms(t)
    elif inner is not None and inner is not transform:
        yield from _transforms(inner)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Deterministic RNG streams for bit-exact resume; see the module docstring.

    Args:
        reseed_every_iter (bool): reseed the global RNGs before every iteration (needed for
            model-side randomness; costs ~0.1 ms per iteration). If False, only before every
            epoch, which is exact when the model draws no random numbers (CMID with ResNet
            or with ``drop_path_rate=0``) and checkpoints are taken at epoch ends.
    """

    priority = 'VERY_HIGH'  # reseed before any other hook of the same stage draws

    def __init__(self, reseed_every_iter: bool = True) -> None:
        self.reseed_every_iter = reseed_every_iter
        self._sample_seeds: List[PerSampleSeed] = []

    # -- checks ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        dataloader = runner.train_dataloader
        datasets = list(_datasets(dataloader.dataset))
        self._sample_seeds = [
            t for ds in datasets if getattr(ds, 'pipeline', None) is not None
            for t in _transforms(ds.pipeline) if isinstance(t, PerSampleSeed)
        ]
        loop = runner.train_loop
        if not self._sample_seeds:
            runner.logger.warning(
                'ExactResumeHook: the train pipeline has no PerSampleSeed transform, so the '
                'augmentations of a resumed run differ from an uninterrupted one (and depend '
                "on num_workers). Add dict(type='PerSampleSeed') as the first transform of "
                'train_dataloader.dataset.pipeline for an exact resume.')
        else:
            repeating = [type(ds).__name__ for ds in datasets
                         if isinstance(ds, (RepeatDataset, ClassBalancedDataset))]
            if repeating:
                raise ValueError(
                    f'PerSampleSeed with {repeating[0]} in train_dataloader.dataset: the '
                    'repeats of a sample within one epoch would all get the same '
                    'augmentation. Train for more epochs instead of repeating the dataset '
                    "(RepeatDataset(times=k) ~ k x max_epochs), or remove dict(type="
                    "'PerSampleSeed') from the pipeline.")
            if not isinstance(loop, EpochBasedTrainLoop):
                raise TypeError(
                    f'PerSampleSeed needs an epoch-based train loop (the sample seeds depend '
                    f'on the epoch); train_cfg builds {type(loop).__name__}. Use train_cfg = '
                    "dict(type='EpochBasedTrainLoop', max_epochs=...), or remove "
                    "dict(type='PerSampleSeed') from the pipeline.")
        self._sync_sampler_seed(runner)
        if isinstance(loop, EpochBasedTrainLoop):
            per_epoch = len(dataloader)
            done = runner.iter - runner.epoch * per_epoch
            if done != 0:
                runner.logger.warning(
                    f'ExactResumeHook: resuming at iteration {runner.iter}, which is not the '
                    f'end of an epoch ({per_epoch} iterations per epoch, epoch {runner.epoch} '
                    f'would start at iteration {runner.epoch * per_epoch}). '
                    'EpochBasedTrainLoop restarts the epoch from its first batch, so this run '
                    'is not an exact continuation: resume from an epoch checkpoint '
                    '(CheckpointHook by_epoch=True), with the same batch size and number of '
                    'processes.')
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.max_keep_ckpts == 1:
                runner.logger.warning(
                    'ExactResumeHook: CheckpointHook max_keep_ckpts=1 deletes the previous '
                    'checkpoint before writing the next one; a crash while writing leaves no '
                    'checkpoint to resume from. Keep at least 2.')

    def _sync_sampler_seed(self, runner) -> None:
        """Give the sampler the run's seed when mmengine built it with another one.

        With ``randomness.seed=None`` the Runner draws a seed, builds the train sampler with
        it, and only then (resume) switches to the seed saved in the checkpoint; the sampler
        keeps the fresh seed and the data order differs. ``diff_rank_seed=True`` samplers
        are built from a synchronised random seed by design and are left alone.
        """
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        if not hasattr(sampler, 'seed'):
            return
        if randomness.get('diff_rank_seed', False):
            if runner.iter > 0:  # resumed: mmengine drew this sampler seed afresh
                runner.logger.warning(
                    'ExactResumeHook: diff_rank_seed=True builds the train sampler from a '
                    'fresh random seed, so the resumed run sees the data in another order '
                    'than the interrupted one (not an exact resume); use diff_rank_seed=False '
                    'for exact resume (docs/resume.md)')
            return
        if sampler.seed != runner.seed:
            runner.logger.info(f'ExactResumeHook: train sampler seed {sampler.seed} -> run '
                               f'seed {runner.seed} (the seed of the resumed checkpoint)')
            sampler.seed = runner.seed

    # -- reseeding ------------------------------------------------------------------------
    def before_train_epoch(self, runner) -> None:
        for transform in self._sample_seeds:
            transform.set_epoch(runner.seed, runner.epoch)
        reseed_global_rngs(EPOCH_STREAM, runner.seed, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None):
        if self.reseed_every_iter:
            reseed_global_rngs(ITER_STREAM, runner.seed, runner.iter)
