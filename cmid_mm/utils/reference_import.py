"""Read the CMID reference implementation's released weights without running its code.

Two layouts exist (see docs/downstream.md):

* "backbone only": a flat ``{name: tensor}`` of the student backbone (ResNet-50 with
  torchvision names, Swin-B with mmcls-0.x names) -- the same names as mmpretrain's backbones;
* full training files: ``{'epoch', 'num_gpus', 'model', 'optimizer', 'metric_storage',
  'hooks'}``. ``metric_storage`` is a pickled object of the reference trainer's own module,
  which users do not have installed.

:func:`load_reference_file` uses torch's safe (``weights_only``) unpickler: every global the file
names that is not a tensor/builtin/numpy type becomes an inert stub class (it only stores what
it is given), so nothing from the file is executed and the missing module is not needed.
:func:`convert_full_state` maps a full file's ``model`` to cmid_mm's CMID state-dict names.
"""
import pickle
import re
from collections import OrderedDict

import torch

from .checkpoint import register_safe_globals, safe_globals


class ReferenceStub:
    """Inert stand-in for a class or function of a module that is not installed."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f'<stub of {type(self).__module__}.{type(self).__qualname__}>'


def _stub_class(full_name: str) -> type:
    module, _, name = full_name.rpartition('.')
    return type(name, (ReferenceStub, ), {'__module__': module, '__qualname__': name})


def _stub_getattr(obj, name: str):
    """``getattr`` for stubs only (pickled methods of stubbed classes), inert otherwise."""
    if isinstance(obj, type) and issubclass(obj, ReferenceStub) or isinstance(obj, ReferenceStub):
        return _stub_class(f'{type(obj).__module__}.{name}')
    raise pickle.UnpicklingError(f'refusing getattr({obj!r}, {name!r}) while reading a '
                                 'reference checkpoint')


def load_reference_file(path: str) -> dict:
    """Load a reference ``.pth`` safely; unknown classes/functions become :class:`ReferenceStub`s.

    The process-wide allow-list is replaced while the file is read (so that only the stubs and
    cmid_mm's own entries apply) and restored exactly afterwards, entries added by the user or
    other libraries included.
    """
    before = list(torch.serialization.get_safe_globals())
    torch.serialization.clear_safe_globals()
    try:
        unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        ours = [g for g in safe_globals() if not isinstance(g, tuple)]
        known = {f'{g.__module__}.{g.__qualname__}' for g in ours}
        stubs = [(_stub_class(n), n) for n in unknown if n not in known and n != 'builtins.getattr']
        with torch.serialization.safe_globals([*ours, *stubs, (_stub_getattr, 'builtins.getattr')]):
            return torch.load(path, map_location='cpu', weights_only=True)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
        register_safe_globals()


def is_full_training_file(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get('model'), dict) and any(
        k.startswith('online_encoder.') for k in obj['model'])


def backbone_only(obj: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The backbone of a "backbone only" file (flat dict) or of a full training file's student."""
    if is_full_training_file(obj):
        prefix = 'online_encoder.model.'
        return OrderedDict((k[len(prefix):], v) for k, v in obj['model'].items()
                           if k.startswith(prefix))
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return OrderedDict((k, v) for k, v in obj.items() if not k.startswith('fc.'))
    raise ValueError('not a CMID reference file: expected a flat {name: tensor} backbone dict '
                     'or a training file with model["online_encoder.*"]; got keys '
                     f'{sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__}')


# (reference prefix, cmid_mm prefix), first match wins.
_PREFIXES = [
    ('online_encoder.model.', 'backbone.'),
    ('branch_encoder.model.', 'teacher.module.backbone.'),
    ('branch_encoder.', 'teacher.module.backbone.'),
    ('mim2org.decoder_pred.', 'mim_head.decoder.'),
    ('online_projector.layer.0.', 'global_neck.mlp.'),
    ('branch_projector.layer.0.', 'teacher.module.global_neck.mlp.'),
    ('class_projector.', 'local_neck.'),
    ('branch_class_projector.', 'teacher.module.local_neck.'),
    ('class_loss.center', 'local_loss.center'),
    ('queue_ptr', 'global_head.queue_ptr'),
    ('queue', 'global_head.queue'),
]
# The reference projector is Linear(0), ..., Linear(3); mmpretrain's MoCoV2Neck is
# Linear(0), ReLU(1), Linear(2).
_PROJECTOR_INDEX = {'0': '0', '3': '2'}


def _rename(key: str) -> str | None:
    for ref, ours in _PREFIXES:
        if key == ref or key.startswith(ref):
            new = ours + key[len(ref):]
            break
    else:
        return None
    if new.startswith(('global_neck.mlp.', 'teacher.module.global_neck.mlp.')):
        head, idx, rest = re.match(r'(.*\.mlp\.)(\d+)(\..*)', new).groups()
        if idx not in _PROJECTOR_INDEX:
            raise KeyError(f'unexpected reference projector layer {key!r}')
        new = head + _PROJECTOR_INDEX[idx] + rest
    return new.replace('last_layer.weight_g', 'last_layer.parametrizations.weight.original0') \
              .replace('last_layer.weight_v', 'last_layer.parametrizations.weight.original1')


def convert_full_state(model_state: dict, steps: int = 1) -> 'OrderedDict[str, torch.Tensor]':
    """Map a reference full file's ``model`` dict to cmid_mm ``CMID`` state-dict names.

    Args:
        model_state: ``obj['model']`` of a reference training file.
        steps: EMA updates done so far (``teacher.steps``); at least 1 so that the next update
            averages into the imported teacher instead of re-copying the student.
    """
    out, skipped = OrderedDict(), []
    token = model_state.get('online_encoder.mask_token')
    for key, value in model_state.items():
        if key == 'online_encoder.mask_token':
            continue
        new = _rename(key)
        if new is None:
            skipped.append(key)
            continue
        if new == 'global_head.queue':
            value = value.t().contiguous()  # reference (dim, K) -> ours (K, dim)
        out[new] = value
    if skipped:
        raise KeyError(f'reference keys with no cmid_mm counterpart: {skipped[:10]}')
    if token is None:
        raise KeyError('reference file has no online_encoder.mask_token')
    # ResNet token acts on (B, C, H, W) maps, Swin/ViT tokens on (B, L, C) sequences.
    is_resnet = 'backbone.conv1.weight' in out
    token = token.reshape(1, -1, 1, 1) if is_resnet else token.reshape(1, 1, -1)
    out['backbone.mask_token'] = token
    out['teacher.module.backbone.mask_token'] = token.clone()  # unused by the teacher
    out['teacher.steps'] = torch.tensor(max(int(steps), 1), dtype=torch.long)
    return out
