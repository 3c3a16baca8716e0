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
``PerSampleSeed`` is used), a checkpoint taken in the middle of an epoch under mmengine's plain
``EpochBasedTrainLoop``, which restarts that epoch from its first batch (warning;
:class:`MidEpochResumeLoop`, which ``SafeRunner`` uses for every epoch-based run, continues at
the next batch instead), a sampler whose seed is not
the resumed run's seed (fixed: with ``randomness.seed=None`` mmengine builds the sampler with a
fresh random seed before it reads the checkpoint's) and ``max_keep_ckpts=1`` (warning:
mmengine deletes the previous checkpoint before writing the next one, so a crash while writing
leaves nothing to resume from).
"""
import contextlib
import itertools
import logging
from typing import Iterator, List, Optional

from mmengine.dataset import ClassBalancedDataset, RepeatDataset
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS, LOOPS
from torch.utils.data import BatchSampler, Sampler

from cmid_mm.datasets.transforms.loading import find_transforms
from cmid_mm.datasets.transforms.sample_seed import (PerSampleSeed, derive_seed,
                                                    seed_global_rngs)

EPOCH_STREAM = 0xE90C  # tags of the seed sequences (PerSampleSeed uses its own)
ITER_STREAM = 0x17E2


def reseed_global_rngs(*words: int) -> None:
    """Seed numpy's, ``random``'s and torch's global RNGs from integer ``words``."""
    seed_global_rngs(derive_seed(*words))


class _SkipFirst(Sampler):
    """``sampler`` without its first ``n`` indices; its length stays the full epoch's, so the
    loop, the logger ("[epoch][i/N]") and the schedulers count batches as in a whole epoch."""

    def __init__(self, sampler, n: int) -> None:
        self.sampler, self.n = sampler, n

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.n, None)

    def __len__(self) -> int:
        return len(self.sampler)


@contextlib.contextmanager
def _batches_from(dataloader, start: int):
    """Iterate ``dataloader`` from batch ``start`` of the current epoch.

    With torch's ``BatchSampler`` (consecutive sample indices; mmengine's default) the first
    ``start * batch_size`` indices of the epoch's order are skipped before any sample is
    loaded. Other batch samplers (grouping ones, e.g. by aspect ratio) are not skipped by
    index: their first ``start`` batches are loaded and dropped (exact, but it costs the data
    loading of those batches; a warning says so).
    """
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    if type(batch_sampler) is BatchSampler:
        inner = batch_sampler.sampler
        batch_sampler.sampler = _SkipFirst(inner, start * batch_sampler.batch_size)
        try:
            yield iter(dataloader)
        finally:
            batch_sampler.sampler = inner
        return
    print_log(
        f'MidEpochResumeLoop: the train batch sampler ({type(batch_sampler).__name__}) is not '
        f"torch's BatchSampler, so the {start} batches of this epoch done before the "
        'checkpoint are loaded and dropped to reach the resume position', logger='current',
        level=logging.WARNING)
    batches = iter(dataloader)
    for _ in range(start):
        next(batches)
    yield batches


@LOOPS.register_module()
class MidEpochResumeLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes a checkpoint written in the middle of an epoch at
    the next batch of that epoch.

    mmengine's loop restores ``epoch`` and ``iter`` from the checkpoint but then starts the
    epoch from its first batch: the batches done before the checkpoint are trained again and
    the epoch ends ``iter - epoch x len(dataloader)`` iterations late. This loop starts the
    resumed epoch at batch ``iter - epoch x len(dataloader)`` of the same sampler order
    (``DefaultSampler``: a function of ``(seed, epoch)``) without loading the skipped samples,
    with the batch indices the interrupted run had, then continues as mmengine's loop.
    With :class:`ExactResumeHook` and ``PerSampleSeed`` the continuation is bit for bit
    (docs/resume.md). ``SafeRunner`` builds it instead of ``EpochBasedTrainLoop``; a
    checkpoint at an epoch end behaves exactly as under mmengine's loop.
    """

    def resume_position(self) -> int:
        """Batches of the current epoch already trained (0 at an epoch start)."""
        return self._iter - self._epoch * len(self.dataloader)

    def run_epoch(self) -> None:
        done, per_epoch = self.resume_position(), len(self.dataloader)
        if not 0 < done <= per_epoch:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if done < per_epoch:  # (== per_epoch: written after the last batch, before the epoch end)
            with _batches_from(self.dataloader, done) as batches:
                for idx, data_batch in enumerate(batches, start=done):
                    self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


def _datasets(dataset) -> Iterator:
    """``dataset`` and every dataset it wraps (mmengine's wrappers, torch's ConcatDataset)."""
    yield dataset
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _datasets(inner)
    for child in getattr(dataset, 'datasets', None) or []:
        yield from _datasets(child)


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
        self._sample_seeds = find_transforms(dataloader.dataset, PerSampleSeed)
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
            if isinstance(loop, MidEpochResumeLoop) and 0 < done <= per_epoch:
                runner.logger.info(
                    f'ExactResumeHook: resuming in the middle of epoch {runner.epoch + 1} at '
                    f'batch {done + 1} of {per_epoch} (iteration {runner.iter + 1})')
            elif done != 0:
                why = ('the checkpoint was written with another number of iterations per '
                       'epoch (batch size, number of processes or dataset changed)'
                       if not 0 < done <= per_epoch else
                       f'{type(loop).__name__} restarts the epoch from its first batch (use '
                       "SafeRunner, which builds MidEpochResumeLoop, or train_cfg type="
                       "'MidEpochResumeLoop')")
                runner.logger.warning(
                    f'ExactResumeHook: resuming at iteration {runner.iter}, which is not the '
                    f'end of an epoch ({per_epoch} iterations per epoch, epoch {runner.epoch} '
                    f'would start at iteration {runner.epoch * per_epoch}) and {why}, so this '
                    'run is not an exact continuation: resume with the same batch size and '
                    'number of processes.')
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
