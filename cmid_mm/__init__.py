"""cmid_mm: CMID self-supervised pretraining for remote sensing on OpenMMLab.

Importing this package (directly or through a config's
``custom_imports=dict(imports=['cmid_mm'])``) checks the OpenMMLab versions, registers every
cmid_mm module in mmpretrain's registries (and the downstream ones in mmseg's / mmdet's), and
allow-lists the globals of mmengine Runner checkpoints for torch's safe loading, and makes
mmengine load URL checkpoints with safe loading too (see SECURITY.md).
"""
from .version import __version__, version_info
from .utils.version_guard import check_versions

check_versions()

from .utils.checkpoint import (install_safe_url_loading, register_safe_globals,  # noqa: E402
                               warn_if_safe_loading_is_off)

register_safe_globals()
install_safe_url_loading()
warn_if_safe_loading_is_off()

from . import cd, datasets, downstream, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__', 'version_info']
