"""``CDIoUMetric``: mmseg's IoUMetric plus the scores of the ``changed`` class, NaN counted 0.

mmseg's ``IoUMetric`` averages per-class scores with ``nanmean``. In binary change detection a
model that predicts no change at all has an undefined (NaN) precision and F1 for the
``changed`` class, so ``mFscore`` becomes the F1 of ``unchanged`` alone, 2(1-c)/(2-c) for a
fraction c of changed pixels (97.4 at c = 5 %), higher than most useful models; a checkpoint
kept by ``save_best='mFscore'`` can be that useless one. Change-detection papers report the
``changed`` class's F1 / IoU.

This metric reports everything ``IoUMetric`` reports (same keys and values, per-class table)
and, computed from the same pixel counts, in percent (2 decimals, as mmseg's):

- ``changed_IoU`` = TP / (TP + FP + FN)
- ``changed_F1`` = 2 TP / (2 TP + FP + FN)
- ``changed_Precision`` = TP / (TP + FP), ``changed_Recall`` = TP / (TP + FN)

where an undefined ratio (0 / 0: nothing predicted as changed, or nothing changed in the
labels) counts as **0**, so a model that never predicts change scores 0 and can never be the
best checkpoint. Use ``default_hooks.checkpoint.save_best='changed_F1'`` (or
``'changed_IoU'``), ``rule='greater'``.

Registered in mmseg's ``METRICS``: ``type='CDIoUMetric'`` with ``default_scope='mmseg'``,
``type='mmseg.CDIoUMetric'`` from open-cd configs (``default_scope='opencd'``).
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Union

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

def _ratio(num: float, den: float) -> float:
    """num / den, with 0 / 0 (undefined) counted as 0."""
    return float(num) / float(den) if den > 0 else 0.0


@METRICS.register_module()
class CDIoUMetric(IoUMetric):
    """IoUMetric that also reports ``changed_F1`` / ``changed_IoU`` (NaN counted as 0).

    Args:
        changed_class (str | int): the class whose scores are reported as ``changed_*``:
            its name in the dataset's ``classes`` (default ``'changed'``, the name in
            LEVIR-CD / CDD of open-cd and cmid_mm) or its index.
        iou_metrics (list[str]): the mean metrics of ``IoUMetric`` also reported
            (default ``['mFscore', 'mIoU']``).
        **kwargs: the other arguments of mmseg's ``IoUMetric`` (``ignore_index``,
            ``nan_to_num`` of the mean metrics, ``beta``, ``output_dir``, ...).
    """

    def __init__(self, changed_class: Union[str, int] = 'changed',
                 iou_metrics: List[str] = ['mFscore', 'mIoU'], **kwargs) -> None:
        if isinstance(changed_class, bool) or not isinstance(changed_class, (str, int)):
            raise TypeError(f'CDIoUMetric: changed_class={changed_class!r} must be a class '
                            "name (e.g. 'changed') or a class index")
        if kwargs.get('beta', 1) != 1:
            raise ValueError(f"CDIoUMetric: beta={kwargs['beta']!r}; changed_F1 is the F1 "
                             'score (beta=1)')
        super().__init__(iou_metrics=iou_metrics, **kwargs)
        self.changed_class = changed_class

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        # the Runner sets it when it builds the loops: a wrong changed_class stops the run
        # before training, not after the first validation
        self._dataset_meta = dataset_meta
        if dataset_meta is not None:
            self._changed_index()

    def _changed_index(self) -> int:
        classes = list(self.dataset_meta['classes'])
        if isinstance(self.changed_class, str):
            if self.changed_class not in classes:
                raise KeyError(
                    f'CDIoUMetric: changed_class={self.changed_class!r} is not a class of the '
                    f'dataset (classes {tuple(classes)}); set changed_class to the name or '
                    'index of the change class in val_evaluator / test_evaluator')
            return classes.index(self.changed_class)
        if not 0 <= self.changed_class < len(classes):
            raise IndexError(f'CDIoUMetric: changed_class={self.changed_class} is not a class '
                             f'index of the dataset (classes {tuple(classes)})')
        return self.changed_class

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        c = self._changed_index()
        intersect, union, pred, label = (sum(r[i] for r in results) for i in range(4))
        tp, pred_c, label_c, union_c = (float(t[c]) for t in (intersect, pred, label, union))
        changed = OrderedDict(
            changed_IoU=_ratio(tp, union_c),
            changed_F1=_ratio(2 * tp, pred_c + label_c),
            changed_Precision=_ratio(tp, pred_c),
            changed_Recall=_ratio(tp, label_c))
        changed = OrderedDict((k, float(np.round(v * 100, 2))) for k, v in changed.items())
        name = self.dataset_meta['classes'][c]
        notes = ([f'no pixel predicted as {name!r}'] if pred_c == 0 else []) + \
            ([f'no pixel labelled {name!r}'] if label_c == 0 else [])
        note = f' ({"; ".join(notes)}: undefined ratios counted as 0)' if notes else ''
        print_log(f'class {name!r}: ' + ', '.join(f'{k} {v:.2f}' for k, v in changed.items())
                  + note, logger='current')
        metrics.update(changed)
        return metrics
