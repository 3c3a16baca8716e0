"""Shared helpers of the test suite: the repository root and loading a script as a module."""
import importlib.util
import os.path as osp

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def load_tool(relpath: str, name: str = None):
    """Import a script of the repository (``relpath`` from the repository root, e.g.
    ``'tools/train.py'``) as a module, without touching ``sys.path`` or ``sys.modules``; its
    ``main(argv)`` can then be called in the test process. ``name`` defaults to the file's
    stem."""
    path = osp.join(REPO, relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such script (load_tool({relpath!r}))')
    spec = importlib.util.spec_from_file_location(
        name or osp.splitext(osp.basename(relpath))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
