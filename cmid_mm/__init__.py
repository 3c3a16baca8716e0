"""cmid_mm: CMID self-supervised pretraining for remote sensing on OpenMMLab.

``import cmid_mm`` (directly or through a config's ``custom_imports=dict(imports=['cmid_mm'])``)
needs only the pretraining stack (torch, mmcv - compiled ops not needed -, mmengine,
mmpretrain). It checks their versions, registers the pretraining modules (CMID, its backbones,
heads, losses, transforms, hooks, optimizers, ``SafeRunner``) in mmpretrain's registries and
mmengine's root registries, allow-lists the globals of mmengine Runner checkpoints for torch's
safe loading and makes mmengine load URL checkpoints with safe loading too (see SECURITY.md).

The downstream parts are separate imports, each checking its own toolbox:
``cmid_mm.downstream.seg`` (mmsegmentation), ``cmid_mm.downstream.det`` (mmdetection),
``cmid_mm.downstream.changedet`` (mmsegmentation; open-cd configs). For one release, a process
that has already imported mmseg / mmdet (their own ``tools/train.py`` do) also gets the matching
parts registered by ``import cmid_mm``, as before the split.
"""
import importlib as _importlib
import sys as _sys

# Toolboxes the process imported before cmid_mm (mmpretrain itself may import mmdet later).
_HOST_TOOLBOXES = [t for t in ('mmseg', 'mmdet') if t in _sys.modules]

from . import _deprecated  # noqa: E402
from .version import __version__, version_info  # noqa: E402
from .utils.version_guard import check_versions  # noqa: E402

check_versions()
_deprecated.install()

from .utils.checkpoint import (install_safe_url_loading, register_safe_globals,  # noqa: E402
                               warn_if_safe_loading_is_off)

register_safe_globals()
install_safe_url_loading()
warn_if_safe_loading_is_off()

from . import datasets, engine, models  # noqa: E402,F401

# Kept for one release (configs that list only 'cmid_mm' for downstream types): register the
# downstream parts whose toolbox the process had imported before cmid_mm.
for _toolbox in _HOST_TOOLBOXES:
    for _part in {'mmseg': ('seg', 'changedet'), 'mmdet': ('det', )}[_toolbox]:
        _importlib.import_module(f'cmid_mm.downstream.{_part}')

__all__ = ['__version__', 'version_info']
