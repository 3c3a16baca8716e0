"""Config loading with errors that say what to do."""
import os.path as osp

from mmengine.config import Config


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing or unreadable config file."""
    if not osp.isfile(path):
        here = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
        raise FileNotFoundError(
            f'config file {path!r} does not exist (cwd: {osp.abspath(".")}). '
            f'Pass the path of a config file, e.g. one under {here}.')
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        raise SyntaxError(f'config file {path!r} is not valid Python: {e}') from e
