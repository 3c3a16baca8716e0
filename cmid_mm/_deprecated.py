"""Old module paths of cmid_mm, kept for one release.

The package was reorganised in 0.3 (one home per concern): change detection moved from
``cmid_mm.cd`` to ``cmid_mm.downstream.changedet``, the segmentation / detection datasets to
``cmid_mm.downstream.seg`` / ``.det``, the weight converters from ``cmid_mm.utils`` to
``cmid_mm.converters`` and the checkpoint guard from ``cmid_mm.engine`` to ``cmid_mm.utils``.
Importing an old path still works: it returns the new module (the same module object, so
``isinstance`` checks and registries see one class) and emits a :class:`DeprecationWarning`
naming the new path. The aliases go away in the next release.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_CD = 'cmid_mm.downstream.changedet'
#: old module name -> new module name
MOVED_MODULES = {
    'cmid_mm.cd': _CD,
    'cmid_mm.cd.datasets': f'{_CD}.datasets.cd_datasets',
    'cmid_mm.cd.transforms': f'{_CD}.datasets.transforms',
    'cmid_mm.cd.bit_head': f'{_CD}.models.bit_head',
    'cmid_mm.cd.data_preprocessor': f'{_CD}.models.data_preprocessor',
    'cmid_mm.cd.fusion_neck': f'{_CD}.models.fusion_neck',
    'cmid_mm.cd.ia_swin': f'{_CD}.models.ia_swin',
    'cmid_mm.cd.siam_encoder_decoder': f'{_CD}.models.siam_encoder_decoder',
    'cmid_mm.cd.metrics': f'{_CD}.evaluation.metrics',
    'cmid_mm.downstream.seg_datasets': 'cmid_mm.downstream.seg.datasets',
    'cmid_mm.downstream.label_check_hook': 'cmid_mm.downstream.seg.label_check_hook',
    'cmid_mm.downstream.det_datasets': 'cmid_mm.downstream.det.datasets',
    'cmid_mm.utils.export': 'cmid_mm.converters.export',
    'cmid_mm.utils.reference_import': 'cmid_mm.converters.reference_import',
    'cmid_mm.utils.arch_check': 'cmid_mm.converters.arch_check',
    'cmid_mm.engine.checkpoint_guard': 'cmid_mm.utils.checkpoint_guard',
}


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f'{old} moved to {new}; import {new} instead (the old name is removed in the next '
        'cmid_mm release)', DeprecationWarning, stacklevel=stacklevel)


class _AliasLoader(importlib.abc.Loader):

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        warn_moved(spec.name, self.new, stacklevel=8)
        module = importlib.import_module(self.new)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The module is the new one, already executed: nothing to run. The import system has
        # put the alias spec on it; give it back its own (sys.modules[old] stays the module).
        module.__spec__ = self._own_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves the names of :data:`MOVED_MODULES` to their new modules."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
