"""Read the CMID reference implementation's released weights without running its code.

Two layouts exist:

* "backbone only": a flat ``{name: tensor}`` of the student backbone (ResNet-50 with
  torchvision names, Swin-B with mmcls-0.x names) -- the same names as mmpretrain's backbones;
* full training files, as the reference trainer writes them after every epoch
  (``epoch_N.pth``): ``{'epoch', 'num_gpus', 'model', 'optimizer', 'metric_storage',
  'hooks'}``. ``metric_storage`` is an object of the reference trainer's own module (a ``dict``
  subclass whose values are history buffers holding ``collections.deque``s), which users do
  not have installed; ``hooks`` holds the state of its hooks.

:func:`load_reference_file` reads either with torch's restricted (``weights_only``) unpickler,
widened in one respect only: every global the file names that is not a tensor, builtin or
numpy type (or one of cmid_mm's allow-listed classes) becomes an inert :class:`ReferenceStub`
that records what the pickle gives it -- constructor arguments, state, dict items, list or
deque appends -- and the unpickler lets stubs, besides real dicts and lists, receive items and
appends. No function or class from the file is ever called, and the missing module is not
needed. :func:`convert_full_state` maps a full file's ``model`` to cmid_mm's CMID names;
:func:`reference_progress` says how far the run behind a full file had got.
"""
import pickle
import re
import types
from collections import OrderedDict
from typing import Optional

import torch
import torch._weights_only_unpickler as _wo

from ..utils.checkpoint import register_safe_globals, safe_globals


class ReferenceStub:
    """Inert stand-in for a class or function of a module that is not installed.

    It only stores what unpickling hands it: :attr:`args` / :attr:`kwargs` (constructor or
    call arguments), :attr:`state` (``__setstate__``), :attr:`dict_items` (items set on it, as
    on a ``dict`` subclass) and :attr:`list_items` (appends, as on a ``list`` subclass or a
    ``collections.deque``).
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.args, self.kwargs = args, kwargs
        self.state = None
        self.dict_items = {}
        self.list_items = []
        return self

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.dict_items[key] = value

    def append(self, item):
        self.list_items.append(item)

    def extend(self, items):
        self.list_items.extend(items)

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


class _StubAwareUnpickler(_wo.Unpickler):
    """torch's restricted unpickler, except that stubs may receive dict items and appends.

    torch only lets SETITEM(S) target exact ``dict`` / ``OrderedDict`` / ``Counter`` objects
    and APPEND(S) target lists; a pickled ``dict`` subclass or ``deque`` of a stubbed class is
    therefore refused. Here the target may also be a :class:`ReferenceStub`, whose
    ``__setitem__`` / ``append`` / ``extend`` only store the values. Everything else (which
    globals may be named, what may be called or built) is torch's check, unchanged.
    """

    def _check_set_item_target(self, opcode: str):
        if not isinstance(self.stack[-1], ReferenceStub):
            super()._check_set_item_target(opcode)

    def _check_append_target(self, list_obj):
        if not isinstance(list_obj, ReferenceStub):
            super()._check_append_target(list_obj)


def _stub_aware_pickle_module() -> types.ModuleType:
    for hook in ('_check_set_item_target', '_check_append_target'):
        if not hasattr(_wo.Unpickler, hook):
            raise RuntimeError(
                f'this torch ({torch.__version__}) has no {hook} in its restricted unpickler; '
                'reading reference training files needs the torch version of '
                'requirements (tools/setup_env.sh). "Backbone only" files do not need it.')
    module = types.ModuleType('cmid_mm_reference_unpickler')
    module.Unpickler = _StubAwareUnpickler
    module.load = lambda file, **kwargs: _StubAwareUnpickler(file, **kwargs).load()
    return module


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
            # torch refuses an explicit pickle_module together with weights_only=True; the
            # module passed here *is* torch's weights-only unpickler (see _StubAwareUnpickler).
            try:
                return torch.load(path, map_location='cpu', weights_only=False,
                                  pickle_module=_stub_aware_pickle_module())
            except RuntimeError as e:
                if 'explicit pickle_module' not in str(e):
                    raise
                raise RuntimeError(
                    f'cannot read {path}: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which makes '
                    'torch refuse the importer\'s own restricted unpickler (it runs no code '
                    'from the file either). Unset it for this command.') from None
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
        register_safe_globals()


def reference_progress(obj: dict, iters_per_epoch: Optional[int] = None) -> dict:
    """Epochs and iterations done by the run that wrote a reference full training file.

    The reference trainer saves ``epoch_N.pth`` at the end of epoch ``N`` (counted from 0)
    with ``epoch = N``, and resumes from it at epoch ``N + 1``: the file holds ``N + 1``
    finished epochs. It logs every iteration into ``metric_storage`` under its global index
    (``epoch * iters_per_epoch + inner_iter``), so the last index logged plus one is the number
    of iterations done, from which the iterations per epoch follow.

    Args:
        obj: the loaded file (:func:`load_reference_file`).
        iters_per_epoch: iterations per epoch of that run, if known; checked against the
            metric storage when it has the counter, required when it has not.

    Returns:
        ``dict(epoch=N + 1, iter=..., iters_per_epoch=...)``, the values an mmengine checkpoint
        written after the same training would carry in ``meta``.
    """
    if 'epoch' not in obj:
        raise KeyError('reference training file has no "epoch" entry; it was not written by '
                       'the reference trainer')
    epochs_done = int(obj['epoch']) + 1
    logged = _last_logged_iteration(obj.get('metric_storage'))
    if logged is not None:
        iters_done = logged + 1
        if iters_done % epochs_done:
            raise ValueError(
                f'reference file: metric_storage last logged iteration {logged} does not end '
                f'epoch {epochs_done - 1} ({iters_done} iterations are not a whole number of '
                f'{epochs_done} epochs); the file was not written at the end of an epoch')
        derived = iters_done // epochs_done
        if iters_per_epoch is not None and iters_per_epoch != derived:
            raise ValueError(
                f'--iters-per-epoch {iters_per_epoch} contradicts the file: its metric_storage '
                f'logged {iters_done} iterations in {epochs_done} epochs ({derived} per epoch). '
                'Leave --iters-per-epoch out to use the file\'s value.')
        iters_per_epoch = derived
    elif iters_per_epoch is None:
        raise ValueError(
            'reference file has no iteration counter in metric_storage: give '
            '--iters-per-epoch (iterations per epoch of the run that wrote it) so that the '
            'iteration, EMA and LR schedules continue where the run stopped')
    if iters_per_epoch <= 0:
        raise ValueError(f'iterations per epoch must be positive; got {iters_per_epoch}')
    return dict(epoch=epochs_done, iter=epochs_done * iters_per_epoch,
                iters_per_epoch=iters_per_epoch)


def _last_logged_iteration(storage) -> Optional[int]:
    """Largest iteration index in a (stubbed) reference metric storage, if it has one."""
    state = storage.state if isinstance(storage, ReferenceStub) else None
    if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
        state = state[0]
    latest = state.get('_latest_iter') if isinstance(state, dict) else None
    if not isinstance(latest, dict):
        return None
    values = [v for v in latest.values() if isinstance(v, int) and not isinstance(v, bool)]
    return max(values) if values else None


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
    ('class_loss.center', 'local_head.center'),
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
