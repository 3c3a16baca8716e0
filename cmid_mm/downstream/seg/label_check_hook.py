"""Stop with the file name when a segmentation / change label holds a value the model cannot
learn (a wrong ``num_classes``, a missing ``reduce_zero_label``, masks saved as 0/255 ...).

Without it the first such batch fails deep inside the loss (``IndexError: Target 7 is out of
bounds``) or, with ignore-style values, silently trains on wrong targets.
"""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...models.utils.wrappers import unwrap_model


def check_seg_labels(data_samples: Sequence, num_classes: int, ignore_index: int) -> None:
    """Raise ValueError naming the label file if a ``gt_sem_seg`` value is outside
    ``[0, num_classes) ∪ {ignore_index}``."""
    for sample in data_samples:
        seg = getattr(sample, 'gt_sem_seg', None)
        if seg is None:
            continue
        data = seg.data
        # min / max decide the common cases without torch.unique (~16 ms per 512 x 512 mask)
        if int(data.min()) >= 0 and int(data.max()) < num_classes:
            continue
        rest = data[data != ignore_index]
        if rest.numel() == 0 or (int(rest.min()) >= 0 and int(rest.max()) < num_classes):
            continue
        bad = [int(v) for v in torch.unique(data)
               if not (0 <= int(v) < num_classes or int(v) == ignore_index)]
        if bad:
            path = sample.metainfo.get('seg_map_path', '<unknown file>')
            raise ValueError(
                f'label file {path} holds values {bad} outside the {num_classes} classes '
                f'0..{num_classes - 1} and the ignore index {ignore_index}. Check num_classes '
                '(decode_head / auxiliary_head), reduce_zero_label, and that masks are stored '
                'as class indices (e.g. 0/1, not 0/255).')


@HOOKS.register_module()
class SegLabelCheckHook(Hook):
    """Check every train / val batch's labels against the decode head's classes.

    Args:
        num_classes: defaults to ``model.decode_head.num_classes``.
        ignore_index: defaults to ``model.decode_head.ignore_index`` (255 in mmseg).
    """

    def __init__(self, num_classes: Optional[int] = None,
                 ignore_index: Optional[int] = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _limits(self, runner):
        model = unwrap_model(runner.model)
        head = getattr(model, 'decode_head', None)
        num_classes = self.num_classes or getattr(head, 'num_classes', None)
        ignore_index = self.ignore_index if self.ignore_index is not None else getattr(
            head, 'ignore_index', 255)
        if num_classes is None:
            raise AttributeError('SegLabelCheckHook: set num_classes (the model has no '
                                 'decode_head.num_classes)')
        return num_classes, ignore_index

    def _check(self, runner, data_batch) -> None:
        if data_batch and 'data_samples' in data_batch:
            check_seg_labels(data_batch['data_samples'], *self._limits(runner))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._check(runner, data_batch)

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._check(runner, data_batch)
