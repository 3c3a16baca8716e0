"""Where the tests find open-cd: the installed package (``import opencd``) and a source
checkout (its ``configs/`` and ``tools/``, which open-cd does not install).

The checkout is, in this order: ``$OPENCD_ROOT``; the folder the installed ``opencd`` was
imported from, when that is a checkout (``pip install -e``); ``../shared/third_party/open-cd``
beside the repository (the snapshot CI installs with ``CMID_OPENCD``).
"""
import os
import os.path as osp

from tests.utils import REPO

TINY = osp.join(REPO, 'tests', 'data', 'levir_cd_tiny')
SNAPSHOT = osp.join(osp.dirname(REPO), 'shared', 'third_party', 'open-cd')
INSTALL_HINT = ('install it from its source checkout with '
                '`CMID_OPENCD=/path/to/open-cd bash tools/setup_env.sh` '
                '(configs/opencd/README.md)')


def is_checkout(path) -> bool:
    return bool(path) and osp.isfile(osp.join(path, 'tools', 'train.py')) and \
        osp.isfile(osp.join(path, 'tools', 'test.py')) and \
        osp.isdir(osp.join(path, 'configs', '_base_'))


def find_opencd():
    """``(root, None)`` or ``(None, reason to skip)``; a wrong ``$OPENCD_ROOT`` raises."""
    try:
        import opencd
    except Exception as e:  # noqa: BLE001  (ImportError, or its version asserts)
        return None, f'open-cd is not importable ({type(e).__name__}: {e}); {INSTALL_HINT}'
    env = os.environ.get('OPENCD_ROOT')
    if env:
        if not is_checkout(env):
            raise RuntimeError(f'OPENCD_ROOT={env!r} is not an open-cd source checkout '
                               '(expected tools/train.py, tools/test.py, configs/_base_/)')
        return osp.abspath(env), None
    for path in (osp.dirname(osp.dirname(osp.abspath(opencd.__file__))), SNAPSHOT):
        if is_checkout(path):
            return osp.abspath(path), None
    return None, (f'open-cd {opencd.__version__} is installed, but no source checkout with its '
                  'configs/ and tools/ was found: set OPENCD_ROOT=/path/to/open-cd')
