"""cmid_mm in the downstream toolboxes, one folder per host toolbox.

* :mod:`cmid_mm.downstream.seg` (mmsegmentation): ISPRS Potsdam / Vaihingen without the clutter
  class, a hook that stops on label values outside the model's classes;
* :mod:`cmid_mm.downstream.det` (mmdetection): DIOR;
* :mod:`cmid_mm.downstream.changedet` (mmsegmentation, open-cd's vocabulary): bitemporal
  datasets, transforms, Siamese models, BIT, the change-detection metric.

Importing this package imports none of them (``import cmid_mm`` needs only the pretraining
stack); a config lists the part it uses, e.g.
``custom_imports = dict(imports=['cmid_mm.downstream.seg'])``, and that part checks its toolbox.
"""
import importlib

from .._deprecated import warn_moved

# Names this package exported before the split (0.2), kept for one release.
_OLD_NAMES = {
    'PotsdamNoClutterDataset': 'cmid_mm.downstream.seg',
    'VaihingenNoClutterDataset': 'cmid_mm.downstream.seg',
    'SegLabelCheckHook': 'cmid_mm.downstream.seg',
    'check_seg_labels': 'cmid_mm.downstream.seg',
    'DIORDataset': 'cmid_mm.downstream.det',
    'DIOR_CLASSES': 'cmid_mm.downstream.det',
}

PARTS = ('seg', 'det', 'changedet')


def __getattr__(name):
    if name in _OLD_NAMES:
        new = _OLD_NAMES[name]
        warn_moved(f'cmid_mm.downstream.{name}', f'{new}.{name}')
        return getattr(importlib.import_module(new), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
