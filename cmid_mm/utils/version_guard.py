"""Check that the installed OpenMMLab stack is one cmid_mm supports."""
from importlib import metadata

from packaging.version import Version

# distribution name -> (min inclusive, max exclusive). Keep in sync with requirements/mminstall.txt.
SUPPORTED = {
    'mmcv': ('2.0.0', '2.2.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
    'mmsegmentation': ('1.2.0', '1.3.0'),
    'mmdet': ('3.3.0', '3.4.0'),
}
SETUP_HINT = 'run `bash tools/setup_env.sh` (or install requirements/mminstall.txt)'


def check_versions(supported: dict = SUPPORTED) -> None:
    """Raise ImportError naming every package whose version is outside ``supported``.

    ``mmcv-lite`` or a missing package is reported as missing: cmid_mm needs the full
    mmcv with compiled ops.
    """
    problems = []
    for dist, (lo, hi) in supported.items():
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f'{dist} is not installed (need >={lo},<{hi})')
            continue
        if not Version(lo) <= Version(found) < Version(hi):
            problems.append(f'{dist}=={found} is installed, cmid_mm supports >={lo},<{hi}')
    if problems:
        raise ImportError('cmid_mm: unsupported OpenMMLab stack:\n  - ' + '\n  - '.join(problems)
                          + f'\nFix: {SETUP_HINT}.')
