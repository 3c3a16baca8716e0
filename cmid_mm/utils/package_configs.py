"""``_base_ = 'cmid_mm::...'``: inherit cmid_mm's configs from a config outside the repository.

An installed cmid_mm carries its configs in ``cmid_mm/.mim/configs`` (setup.py; an editable
install links them there), as mmpretrain does. mmengine 0.10.7 resolves ``'pkg::path'`` itself
but only for the OpenMMLab packages in its fixed ``MODULE2PACKAGE`` table, only for paths with a
folder (``'pkg::dir/file.py'``, so not our top-level recipes such as
``cmid_mm::cmid_swin_pretrain.py``) and through the distribution's install location (which is
not the checkout for a PEP 660 editable install). :func:`enable_package_configs` therefore adds
``cmid_mm`` to that table and resolves ``cmid_mm::`` paths itself:
``cmid_mm::REL`` is ``<cmid_mm package>/.mim/configs/REL`` (or ``<checkout>/configs/REL`` when
cmid_mm is imported from a checkout without an install). Every other ``pkg::`` path is left to
mmengine unchanged.

It runs on ``import cmid_mm`` (cmid_mm/utils/config.py) and in ``tools/train.py`` /
``tools/test.py`` (:func:`cmid_mm.utils.load_config`, so also under ``mim train`` / ``mim
test``). A plain ``Config.fromfile`` in a process that has not imported cmid_mm still fails with
mmengine's own error (``_get_package_and_cfg_path is used for get external package ...`` for
``cmid_mm::NAME.py``, ``mmengine does not support to load cmid_mm config`` for
``cmid_mm::DIR/NAME.py``): import cmid_mm first.
Like a relative ``_base_``, the inherited dicts get no ``_scope_``: cmid_mm's configs set their
``default_scope`` themselves.
"""
import os.path as osp

PREFIX = 'cmid_mm::'


def package_configs_dir() -> str:
    """Folder that ``cmid_mm::REL`` is relative to."""
    pkg = osp.dirname(osp.dirname(osp.abspath(__file__)))
    installed = osp.join(pkg, '.mim', 'configs')
    if osp.isdir(installed):
        return installed
    checkout = osp.join(osp.dirname(pkg), 'configs')
    return checkout if osp.isdir(checkout) else installed


def resolve_package_config(cfg_path: str) -> str:
    """Absolute path of ``'cmid_mm::REL'``; FileNotFoundError naming what is missing."""
    if not cfg_path.startswith(PREFIX):
        raise ValueError(f'{cfg_path!r} does not start with {PREFIX!r}')
    rel = cfg_path[len(PREFIX):]
    root = package_configs_dir()
    path = osp.normpath(osp.join(root, rel))
    if osp.isabs(rel) or not path.startswith(osp.normpath(root) + osp.sep):
        raise ValueError(f'{cfg_path!r}: the part after {PREFIX!r} must be a path relative to '
                         f"cmid_mm's configs folder ({root}), e.g. "
                         "'cmid_mm::cmid_swin_pretrain.py' or "
                         "'cmid_mm::segmentation/upernet_cmid-r50_4xb4-50e_potsdam-512x512.py'")
    if not osp.isfile(path):
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'{cfg_path!r}: cmid_mm has no configs folder ({root} is missing). Reinstall '
                'cmid_mm (`pip install .` or `pip install -e .` creates cmid_mm/.mim/configs).')
        raise FileNotFoundError(
            f'{cfg_path!r}: no config {rel!r} in {root}. `mim search cmid_mm --valid-config` '
            'lists the configs.')
    return path


def enable_package_configs() -> bool:
    """Make mmengine's Config resolve ``cmid_mm::`` paths (idempotent). False if mmengine has
    no ``Config._get_cfg_path`` to hook (another mmengine than the supported 0.10.x)."""
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault('cmid_mm', 'cmid_mm')
    config_cls = config_module.Config
    original = config_cls.__dict__.get('_get_cfg_path')
    if original is None:
        return False
    original = original.__func__ if isinstance(original, staticmethod) else original
    if getattr(original, '_cmid_mm_package_configs', False):
        return True

    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(PREFIX):
            return resolve_package_config(cfg_path), None
        return original(cfg_path, filename)

    _get_cfg_path._cmid_mm_package_configs = True
    _get_cfg_path.__doc__ = original.__doc__
    config_cls._get_cfg_path = staticmethod(_get_cfg_path)
    return True
