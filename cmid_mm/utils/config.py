"""Config loading with errors that say what to do."""
import os.path as osp

from mmengine.config import Config

from .package_configs import enable_package_configs, package_configs_dir

# `_base_ = 'cmid_mm::...'` works in any process that imported cmid_mm (package_configs.py).
enable_package_configs()


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing or unreadable config file."""
    enable_package_configs()
    if not osp.isfile(path):
        here = osp.realpath(package_configs_dir())
        raise FileNotFoundError(
            f'config file {path!r} does not exist (cwd: {osp.abspath(".")}). '
            f'Pass the path of a config file, e.g. one under {here}.')
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        raise SyntaxError(f'config file {path!r} is not valid Python: {e}') from e


def fix_dataloaders(cfg: Config, no_pin_memory: bool = False,
                    no_persistent_workers: bool = False) -> Config:
    """Make the data loader settings consistent after command-line overrides.

    ``persistent_workers=True`` with ``num_workers=0`` makes torch's DataLoader raise, so it is
    switched off there (and everywhere with ``no_persistent_workers``).
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if not loader:
            continue
        if no_pin_memory:
            loader['pin_memory'] = False
        if no_persistent_workers or loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
    return cfg
