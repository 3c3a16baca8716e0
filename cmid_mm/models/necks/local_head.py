"""Old home of the local projection; ``CMIDLocalHead`` is now ``CMIDLocalNeck``.

Kept for one release: the registered name ``CMIDLocalHead`` and this import path still work
and warn (:class:`DeprecationWarning` and a logged warning) when the module is built.
"""
from mmpretrain.registry import MODELS

from cmid_mm.models.utils.deprecation import warn_renamed
from .local_neck import CMIDLocalNeck


@MODELS.register_module()
class CMIDLocalHead(CMIDLocalNeck):
    """Deprecated name of :class:`CMIDLocalNeck` (same arguments, same state dict)."""

    def __init__(self, *args, **kwargs) -> None:
        warn_renamed('CMIDLocalHead', 'CMIDLocalNeck')
        super().__init__(*args, **kwargs)
