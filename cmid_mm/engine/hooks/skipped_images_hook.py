"""Report, after every training epoch, how many image files the data pipeline skipped."""
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from cmid_mm.datasets.transforms.loading import SKIP_REASONS, find_image_loaders


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Log the files skipped by ``LoadRSImageFromFile(on_error='skip')`` per epoch and in all.

    The counts are read from the loaders of the train data loader (dataset wrappers and
    composed pipelines are searched). They live in shared memory, so samples skipped inside
    data-loader workers (forked or spawned, persistent or not) are counted as well as with
    ``num_workers=0``; under torch.distributed they are summed over ranks. The names of the
    skipped files are in the "skipped image" warnings of the process that skipped them (workers
    write to the same log when forked). The totals count since the start of this process (a
    resumed run starts again from 0). Does nothing if no loader of the train pipeline skips.

    The totals are also stored in the message hub as the runtime info ``skipped_images``.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._loaders = None
        self._at_epoch_start: Optional[Dict[str, int]] = None

    def _counts(self, runner) -> Optional[Dict[str, int]]:
        if self._loaders is None:
            loader = runner.train_loop.dataloader
            self._loaders = [t for t in find_image_loaders(loader) if t.on_error == 'skip']
        if not self._loaders:
            return None
        totals = torch.zeros(len(SKIP_REASONS), dtype=torch.int64)
        for t in self._loaders:
            totals += torch.tensor([t.skip_counts()[r] for r in SKIP_REASONS])
        all_reduce(totals, op='sum')
        return dict(zip(SKIP_REASONS, totals.tolist()))

    def before_train_epoch(self, runner) -> None:
        self._at_epoch_start = self._counts(runner)

    def after_train_epoch(self, runner) -> None:
        now = self._counts(runner)
        if now is None:
            return
        start = self._at_epoch_start or dict.fromkeys(SKIP_REASONS, 0)
        epoch = {k: now[k] - start[k] for k in SKIP_REASONS}
        n_epoch, n_total = sum(epoch.values()), sum(now.values())
        runner.message_hub.update_info('skipped_images', n_total)
        if n_epoch == 0:
            runner.logger.info(f'skipped images: none in epoch {runner.epoch + 1} '
                               f'({n_total} in this run)')
            return
        detail = ', '.join(f'{k}={v}' for k, v in epoch.items() if v)
        runner.logger.warning(
            f'skipped images: {n_epoch} in epoch {runner.epoch + 1} ({detail}); {n_total} in '
            'this run. The "skipped image" warnings name the files; each was replaced by a random '
            'other sample.')

    def after_train(self, runner) -> None:
        now = self._counts(runner)
        if now is None:
            return
        detail = ', '.join(f'{k}={v}' for k, v in now.items() if v) or 'none'
        runner.logger.info(f'skipped images in this run: {sum(now.values())} ({detail})')
