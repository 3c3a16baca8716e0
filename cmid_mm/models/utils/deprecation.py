"""Warnings for registered names and config keys renamed in cmid_mm 0.3 (kept one release)."""
import logging
import warnings

from mmengine.logging import print_log


def warn_renamed(old: str, new: str, what: str = 'registered type') -> None:
    """Emit a :class:`DeprecationWarning` and a logged warning: ``old`` is now ``new``."""
    msg = (f'{what} {old!r} is deprecated: it was renamed {new!r} in cmid_mm 0.3; use '
           f'{new!r} (the old name is removed in the next release)')
    warnings.warn(msg, DeprecationWarning, stacklevel=3)
    print_log(msg, logger='current', level=logging.WARNING)
