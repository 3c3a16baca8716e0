"""Check that the installed OpenMMLab stack is one cmid_mm supports.

Pretraining needs torch + mmcv (compiled ops are not needed) + mmengine + mmpretrain:
``import cmid_mm`` checks those. Each downstream part checks its own toolbox when it is
imported (``cmid_mm.downstream.seg`` / ``.changedet``: mmsegmentation, ``.det``: mmdet).
"""
from importlib import metadata
from typing import Dict, Optional, Sequence, Tuple

from packaging.version import Version

# distribution name -> (min inclusive, max exclusive). Keep in sync with requirements/mminstall.txt.
SUPPORTED: Dict[str, Tuple[str, str]] = {
    'mmcv': ('2.0.0', '2.2.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
    'mmsegmentation': ('1.2.0', '1.3.0'),
    'mmdet': ('3.3.0', '3.4.0'),
}
#: what ``import cmid_mm`` (pretraining, export, classification fine-tuning) needs
CORE = ('mmcv', 'mmengine', 'mmpretrain')
#: what each downstream part needs on top of ``CORE``
DOWNSTREAM = {
    'seg': ('mmsegmentation', ),
    'det': ('mmdet', ),
    'changedet': ('mmsegmentation', ),
}
SETUP_HINT = 'run `bash tools/setup_env.sh` (or install requirements/mminstall.txt)'
# mmcv-lite (no compiled ops) is enough for pretraining; its distribution is named mmcv-lite.
_ALTERNATIVE_DISTS = {'mmcv': ('mmcv-lite', )}


def _installed_version(dist: str) -> Optional[str]:
    for name in (dist, ) + _ALTERNATIVE_DISTS.get(dist, ()):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_versions(names: Optional[Sequence[str]] = None,
                   supported: Optional[dict] = None,
                   purpose: str = 'cmid_mm',
                   hint: str = SETUP_HINT) -> None:
    """Raise ImportError naming every package of ``names`` missing or outside its range.

    Args:
        names: distributions to check (default :data:`CORE`), or a ``supported`` table whose
            distributions are all checked.
        supported: ``{dist: (min, max_exclusive)}`` (default :data:`SUPPORTED`).
        purpose: who needs them, for the message (e.g. ``cmid_mm.downstream.seg``).
        hint: how to fix it, for the message.
    """
    if isinstance(names, dict):  # check_versions({dist: (lo, hi)}): that table, all of it
        supported, names = names, tuple(names)
    supported = SUPPORTED if supported is None else supported
    names = CORE if names is None else names
    problems = []
    for dist in names:
        lo, hi = supported[dist]
        found = _installed_version(dist)
        if found is None:
            problems.append(f'{dist} is not installed (need >={lo},<{hi})')
        elif not Version(lo) <= Version(found) < Version(hi):
            problems.append(f'{dist}=={found} is installed, cmid_mm supports >={lo},<{hi}')
    if problems:
        raise ImportError(f'{purpose}: unsupported OpenMMLab stack:\n  - '
                          + '\n  - '.join(problems) + f'\nFix: {hint}.')


def check_downstream(part: str) -> None:
    """Check the toolbox a downstream part (``seg``, ``det``, ``changedet``) needs."""
    check_versions(
        DOWNSTREAM[part], purpose=f'cmid_mm.downstream.{part}',
        hint=f"install it (`pip install 'cmid_mm[{part}]'`, or run `bash tools/setup_env.sh`, "
        'which installs every toolbox)')
