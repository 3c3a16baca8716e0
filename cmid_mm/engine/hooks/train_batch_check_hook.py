"""Check, before the first training iteration, that every epoch has batches the model can take.

Two mistakes otherwise stop a run late or with an unrelated message:

* fewer samples per process than one batch with ``drop_last=True``: the epoch has no
  iteration; with an iteration-based LR schedule (``convert_to_iter_based=True``) mmengine stops
  with ``AssertionError: epoch_length must be a positive integer, but got 0``, otherwise
  every epoch is empty and "training" saves untrained checkpoints;
* a short last batch (``drop_last=False`` and a number of samples per process that is not a
  multiple of the batch size) with the CMID queue (:class:`QueueContrastiveHead`), which takes
  the keys of all processes at once and needs ``queue_len`` to be a multiple of their number:
  the run stops at the last iteration of the first epoch, before that epoch's checkpoint.

:func:`check_train_batches` computes the batches of every process from the built data loader
(its sampler's length on each process, ``batch_size``, ``drop_last``) and raises a
``ValueError`` naming the dataset, the numbers and what to set. :class:`TrainBatchCheckHook`
calls it in ``before_train`` (any runner, any tool: after the checkpoint is loaded, before the
first iteration). mmengine builds the LR schedulers before any hook runs, so the empty-epoch
case with an iteration-based schedule needs the call before ``Runner.train()``: the runner or
the train script calls :func:`check_train_batches` itself for that.
"""
import os.path as osp
from typing import List

from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather_object, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from cmid_mm.models.heads.queue_contrastive_head import QueueContrastiveHead


def describe_dataset(dataset) -> str:
    """``RSImageFolder (images under '/data/x')``: the type and where the samples come from."""
    name = type(dataset).__name__
    for attr in ('dataset', 'datasets'):  # wrappers (RepeatDataset, ConcatDataset, ...)
        inner = getattr(dataset, attr, None)
        if inner is not None:
            inner = inner if isinstance(inner, (list, tuple)) else [inner]
            return f'{name} of ' + ' + '.join(describe_dataset(d) for d in inner)
    ann_file = getattr(dataset, 'ann_file', None)
    if ann_file:
        return f'{name} (file list {osp.abspath(ann_file)!r})'
    folder = getattr(dataset, 'img_prefix', None) or getattr(dataset, 'data_root', None)
    return f'{name} (images under {osp.abspath(folder)!r})' if folder else name


def _batches(num_samples: int, batch_size: int, drop_last: bool) -> List[int]:
    sizes = [batch_size] * (num_samples // batch_size)
    if not drop_last and num_samples % batch_size:
        sizes.append(num_samples % batch_size)
    return sizes


def check_train_batches(dataloader, model=None) -> None:
    """Raise a ``ValueError`` if an epoch of ``dataloader`` has no batch, or a batch that
    ``model``'s queue cannot take (see the module docstring). Under torch.distributed every
    process must call it (the sample counts of all processes are gathered).

    Args:
        dataloader: the built train ``DataLoader`` (e.g. ``runner.train_dataloader``).
        model: the model (wrapped or not); its :class:`QueueContrastiveHead` modules are
            checked. None: only the empty-epoch check.
    """
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    batch_size = getattr(batch_sampler, 'batch_size', None)
    sampler = getattr(batch_sampler, 'sampler', None)
    if batch_size is None or sampler is None or isinstance(sampler, InfiniteSampler):
        return  # a custom batch sampler without these, or batches that never run out
    drop_last = bool(getattr(batch_sampler, 'drop_last', False))
    counts = [int(n) for n in all_gather_object(len(sampler))]  # samples of each process
    world = get_world_size()
    plans = [_batches(n, batch_size, drop_last) for n in counts]
    dataset = getattr(dataloader, 'dataset', None)
    what = (f'train_dataloader: the dataset {describe_dataset(dataset)} has {len(dataset)} '
            f'samples' if dataset is not None else 'train_dataloader')
    per_process = (f'{counts[0]} per process with {world} processes' if world > 1 else
                   f'{counts[0]} in the only process')
    setting = (f'batch_size={batch_size} per process x {world} process(es) '
               f'(world size) and drop_last={drop_last}')
    if min(len(p) for p in plans) == 0:
        raise ValueError(
            f'{what} ({per_process}); with {setting} an epoch has no batch, so nothing would be '
            f'trained (mmengine would stop with "epoch_length must be a positive integer, but '
            f'got 0", or train empty epochs). Use at least {batch_size * world} images '
            f'(batch_size x world size) or lower train_dataloader.batch_size to at most '
            f'{max(min(counts), 1)} (e.g. --cfg-options train_dataloader.batch_size='
            f'{max(min(counts), 1)})' + (', or train on fewer processes.' if world > 1 else '.'))
    if len({len(p) for p in plans}) > 1:
        raise ValueError(
            f'{what}, split {counts} over the {world} processes: with {setting} they run '
            f'{[len(p) for p in plans]} iterations per epoch, and the processes would wait for '
            'each other forever at the end of the epoch. Use train_dataloader.sampler='
            "dict(type='DefaultSampler', round_up=True) (the default) or drop_last=True.")
    if model is None:
        return
    # Keys enqueued at once = the batches of all processes at the same iteration.
    full = sum(p[0] for p in plans)
    last = sum(p[-1] for p in plans)
    for name, head in model.named_modules():
        if not isinstance(head, QueueContrastiveHead):
            continue
        name = name[len('module.'):] if name.startswith('module.') else name
        queue_len = int(head.queue.shape[0])
        if queue_len % full:
            raise ValueError(
                f'model.{name}.queue_len={queue_len} is not a multiple of the keys it takes per '
                f'iteration: {full} = batch_size {batch_size} x world size {world}. The run '
                f'would stop at the first iteration. Choose a queue_len divisible by {full} '
                f'(e.g. {max(queue_len // full, 1) * full}), or change the batch size.')
        if queue_len % last:
            short = plans[0][-1]
            raise ValueError(
                f'{what} ({per_process}); with {setting} the last batch of every epoch has '
                f'{short} sample(s) per process ({counts[0]} = {len(plans[0]) - 1} x '
                f'{batch_size} + {short}), so the CMID queue model.{name} (queue_len='
                f'{queue_len}) would take {last} keys at once, and {queue_len} is not a '
                f'multiple of {last}: the run would stop at the last iteration of the first '
                'epoch, before its checkpoint. Set train_dataloader.drop_last=True (each epoch '
                f'then leaves out {short} sample(s) per process, other ones each epoch when the '
                'sampler shuffles), or use a number of images that fills every batch (a '
                f'multiple of {batch_size * world}).')


@HOOKS.register_module()
class TrainBatchCheckHook(Hook):
    """Run :func:`check_train_batches` on the train data loader and the model before the first
    training iteration (see the module docstring)."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_train_batches(runner.train_dataloader, runner.model)
