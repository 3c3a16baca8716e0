"""Old home of the local loss; ``DINOLocalLoss`` is now the head ``DINOLocalHead``.

Kept for one release: the registered name ``DINOLocalLoss`` and this import path still work
and warn (:class:`DeprecationWarning` and a logged warning) when the module is built.
"""
from mmpretrain.registry import MODELS

from cmid_mm.models.heads.dino_local_head import DINOLocalHead
from cmid_mm.models.utils.deprecation import warn_renamed


@MODELS.register_module()
class DINOLocalLoss(DINOLocalHead):
    """Deprecated name of :class:`~cmid_mm.models.heads.DINOLocalHead` (same arguments,
    same state)."""

    def __init__(self, *args, **kwargs) -> None:
        warn_renamed('DINOLocalLoss', 'DINOLocalHead')
        super().__init__(*args, **kwargs)

    def loss(self, student, teacher):
        """``forward``: subclasses written against the old class override ``forward`` (the
        old loss was called as ``loss_module(student, teacher)``); ``CMID`` calls ``loss``."""
        return self.forward(student, teacher)
