"""Paths as the reports record them: relative to the repository, never a machine's layout.

The JSON / markdown reports of the benchmark and the study go into the repository
(docs/benchmarks, docs/learning_signal); the absolute path of a checkout or of a scratch
folder on the machine that ran them means nothing to a reader. ``portable`` writes a path below the
repository relative to it, the Python interpreter as ``python`` and any other absolute path as
``<outside>/<last component>``; ``portable_args`` does that to each item of a command line,
including the value of ``key=/abs/path`` options (mmengine's ``--cfg-options``).
"""
import os.path as osp
import sys
from typing import Iterable, List

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def portable(path: str, repo: str = REPO) -> str:
    """``path`` for a report: relative to ``repo`` when inside it, else without its folders."""
    if not isinstance(path, str) or not osp.isabs(path):
        return path
    if osp.abspath(path) == osp.abspath(sys.executable):
        return 'python'
    rel = osp.relpath(osp.abspath(path), osp.abspath(repo))
    if rel == '.':
        return '.'
    if rel != '..' and not rel.startswith('..' + osp.sep):
        return rel
    return '<outside>/' + osp.basename(osp.normpath(path))


def portable_args(args: Iterable[str], repo: str = REPO) -> List[str]:
    """Each argument through :func:`portable`; ``key=/abs/path`` keeps its key."""
    out = []
    for arg in args:
        arg = str(arg)
        key, sep, value = arg.partition('=')
        if sep and not osp.isabs(arg) and osp.isabs(value):
            out.append(f'{key}={portable(value, repo)}')
        else:
            out.append(portable(arg, repo))
    return out
