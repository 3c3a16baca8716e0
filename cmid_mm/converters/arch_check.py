"""Check that a checkpoint's backbone weights fit a backbone, before training with them.

mmengine's ``load_checkpoint`` / ``init_cfg=dict(type='Pretrained')`` load with
``strict=False``: a ResNet-50 file given to a ResNet-18, or a Swin-B file given to a Swin-T,
only *logs* the missing, unexpected and shape-mismatched keys and the run goes on from a
backbone that is partly random. :func:`check_backbone_checkpoint` compares the two key sets and
raises with a summary that names them.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.runner.checkpoint import _load_checkpoint

from .export import DROPPED_KEYS, DROPPED_SUFFIXES

# Keys loaders ignore or rebuild (the CMID mask token, Swin buffers derived from the window
# size), so a difference in them is not a mismatch.
IGNORED_KEYS = DROPPED_KEYS
IGNORED_SUFFIXES = DROPPED_SUFFIXES
MAX_LISTED = 10


class CheckpointArchMismatch(ValueError):
    """The checkpoint's backbone weights do not fit the backbone; ``report`` has the keys."""

    def __init__(self, message: str, report: 'ArchCheckReport') -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ArchCheckReport:
    """Comparison of a backbone's state dict with a checkpoint's (prefix removed)."""
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # in the backbone, not in the file
    unexpected: List[str] = field(default_factory=list)  # in the file, not in the backbone
    # (key, shape in the file, shape in the backbone)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    file_values: int = 0
    model_values: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """Counts and the first keys of each kind, one block per line."""
        lines = [f'{len(self.matched)} tensors match; the file has {self.file_values / 1e6:.2f}M '
                 f'values, the backbone {self.model_values / 1e6:.2f}M.']

        def listed(items):
            more = len(items) - MAX_LISTED
            return ', '.join(items[:MAX_LISTED]) + (f', ... ({more} more)' if more > 0 else '')

        if self.mismatched:
            lines.append(f'{len(self.mismatched)} with another shape (file vs backbone): ' +
                         listed([f'{k} {tuple(a)} vs {tuple(b)}'
                                 for k, a, b in self.mismatched]))
        if self.missing:
            lines.append(f'{len(self.missing)} missing from the file: ' + listed(self.missing))
        if self.unexpected:
            lines.append(f'{len(self.unexpected)} in the file but not in the backbone: ' +
                         listed(self.unexpected))
        return '\n'.join(lines)


def _ignored(key: str, ignore_keys: Sequence[str], ignore_suffixes: Sequence[str]) -> bool:
    return key in ignore_keys or key.endswith(tuple(ignore_suffixes))


def compare_state_dicts(model_state: Dict[str, torch.Tensor],
                        file_state: Dict[str, torch.Tensor],
                        ignore_keys: Sequence[str] = IGNORED_KEYS,
                        ignore_suffixes: Sequence[str] = IGNORED_SUFFIXES) -> ArchCheckReport:
    """Match two state dicts key by key (keys in ``ignore_*`` are left out)."""
    report = ArchCheckReport()
    model_state = {k: v for k, v in model_state.items()
                   if not _ignored(k, ignore_keys, ignore_suffixes)}
    file_state = {k: v for k, v in file_state.items()
                  if not _ignored(k, ignore_keys, ignore_suffixes)}
    for key, value in model_state.items():
        if key not in file_state:
            report.missing.append(key)
        elif tuple(file_state[key].shape) != tuple(value.shape):
            report.mismatched.append((key, tuple(file_state[key].shape), tuple(value.shape)))
        else:
            report.matched.append(key)
    report.unexpected = [k for k in file_state if k not in model_state]
    report.file_values = sum(v.numel() for v in file_state.values() if torch.is_tensor(v))
    report.model_values = sum(v.numel() for v in model_state.values())
    return report


def backbone_weights(checkpoint: dict, prefix: str = 'backbone.', source: str = '') -> dict:
    """The tensors under ``prefix`` (removed) of a loaded checkpoint or state dict."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{source}: not a checkpoint (a dict of tensors, or a dict with a '
                         f"'state_dict'); got {type(checkpoint).__name__}")
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items() if torch.is_tensor(v)}
    if not prefix:
        return state
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(
            f'{source}: no key starts with prefix {prefix!r} (first keys: '
            f'{list(state)[:5]}). For a file of bare backbone weights pass prefix=\'\' '
            '(check_weights.py --prefix ""); for a CMID training checkpoint use '
            "'backbone.' (student) or 'teacher.module.backbone.' (EMA teacher).")
    return out


def check_backbone_checkpoint(model_backbone: torch.nn.Module,
                              checkpoint_path: str,
                              prefix: str = 'backbone.',
                              strict: bool = True,
                              ignore_keys: Sequence[str] = IGNORED_KEYS,
                              ignore_suffixes: Sequence[str] = IGNORED_SUFFIXES
                              ) -> ArchCheckReport:
    """Compare ``model_backbone``'s state dict with the weights under ``prefix`` in a file.

    Args:
        model_backbone: the backbone module the weights are meant for.
        checkpoint_path: a file (or URL / ``open-mmlab://`` name, as mmengine loads them).
        prefix: the backbone's key prefix in the file (``''``: keys as in the backbone).
        strict: raise :class:`CheckpointArchMismatch` unless every key matches in name and
            shape; with False only return the report.
        ignore_keys / ignore_suffixes: keys left out of the comparison (by default the CMID
            mask token and Swin buffers rebuilt from the window size).

    Returns:
        The :class:`ArchCheckReport`.
    """
    checkpoint = _load_checkpoint(checkpoint_path, map_location='cpu')
    weights = backbone_weights(checkpoint, prefix, source=str(checkpoint_path))
    report = compare_state_dicts(model_backbone.state_dict(), weights, ignore_keys,
                                 ignore_suffixes)
    if strict and not report.ok:
        name = type(model_backbone).__name__
        arch = ', '.join(f'{a}={getattr(model_backbone, a)}' for a in ('depth', 'embed_dims')
                         if isinstance(getattr(model_backbone, a, None), int))
        raise CheckpointArchMismatch(
            f'{checkpoint_path} (keys under {prefix!r}) does not fit the backbone {name}'
            f'{f"({arch})" if arch else ""}:\n{report.summary()}\n'
            'The file was most likely trained with another architecture or size: use weights '
            "of the backbone's architecture, or set the config's backbone (depth / arch) to "
            "the file's. mmengine would load it anyway, leaving the listed tensors random.",
            report)
    return report
