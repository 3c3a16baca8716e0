"""Full training checkpoints of the CMID reference trainer: import, progress, no code run.

The fixtures have the structure the reference trainer's own save code writes after epoch N
(``epoch_N.pth``): ``epoch`` (= N), ``num_gpus``, ``model``, ``optimizer``,
``metric_storage`` -- a ``dict`` subclass of history buffers whose values sit in
``collections.deque``s, filled by logging every iteration under its global index -- and
``hooks`` (the state of its hooks). The look-alike classes below are written for these tests
(not taken from the reference) and are pickled under the reference's module names, which do
not exist when the file is loaded: the importer has to stub them.
"""
import builtins
import collections
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from cmid_mm.converters.reference_import import (ReferenceStub, load_reference_file,
                                                 reference_progress)
from tests.test_tools.test_model_converters import _reference_layout, _tiny_cmid, _tool

CALLED = []  # code of the look-alike classes appends here if it ever runs during a load

MODULES = ('Exploring', 'Exploring.utils', 'Exploring.utils.history_buffer',
           'Exploring.utils.metric', 'Exploring.hook', 'Exploring.hook.checkpoint_hook',
           'Exploring.hook.optimizer_hook')


# ------------------------------------------------------------------ look-alike trainer classes
class HistoryBuffer:
    """Recent values of one metric in a bounded deque, plus count and sum."""

    def __init__(self, window_size=20):
        self._history = collections.deque(maxlen=window_size)
        self._count, self._sum = 0, 0.0

    def update(self, value):
        self._history.append(value)
        self._count += 1
        self._sum += value

    def __setstate__(self, state):
        CALLED.append('HistoryBuffer.__setstate__')
        self.__dict__.update(state)


class MetricStroge(dict):  # sic: the reference's spelling of the class name
    """metric name -> HistoryBuffer, with the last iteration index logged per metric."""

    def __init__(self, window_size=20):
        super().__init__()
        self._window_size = window_size
        self._history = self
        self._smooth, self._latest_iter = {}, {}

    def update(self, iter, smooth=True, **values):
        for key, value in values.items():
            if key not in self._smooth:
                self._smooth[key] = smooth
                self[key] = HistoryBuffer(self._window_size)
            self._latest_iter[key] = iter
            self[key].update(value)

    def __setstate__(self, state):
        CALLED.append('MetricStroge.__setstate__')
        self.__dict__.update(state)


class CheckpointerHook:
    def __init__(self):
        self._period, self._max_to_keep, self._recent_checkpoints = 1, None, []

    def state_dict(self):
        return dict(self.__dict__)


class Fp16OptimizerHook:
    """Holds loss-scaler state and a deque of recent grad norms (hook object with state)."""

    def __init__(self):
        self.loss_scale = {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5,
                           'growth_interval': 2000, '_growth_tracker': 17}
        self.recent = collections.deque([0.5, 0.25], maxlen=4)

    def state_dict(self):
        return dict(self.loss_scale)

    def __setstate__(self, state):
        CALLED.append('Fp16OptimizerHook.__setstate__')
        self.__dict__.update(state)


class Exec:
    """A payload: unpickling this runs ``code`` through builtins.exec (importable!)."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code, ))


_HOME = {HistoryBuffer: 'Exploring.utils.history_buffer', MetricStroge: 'Exploring.utils.metric',
         CheckpointerHook: 'Exploring.hook.checkpoint_hook',
         Fp16OptimizerHook: 'Exploring.hook.optimizer_hook'}


class _reference_modules:
    """Make the look-alike classes importable under the reference's module names (for
    pickling, or to show that even importable classes are not used on load)."""

    def __enter__(self):
        for name in MODULES:
            sys.modules[name] = types.ModuleType(name)
        self._saved = {}
        for cls, module in _HOME.items():
            self._saved[cls] = (cls.__module__, cls.__qualname__)
            cls.__module__, cls.__qualname__ = module, cls.__name__
            setattr(sys.modules[module], cls.__name__, cls)

    def __exit__(self, *exc):
        for cls, (module, qualname) in self._saved.items():
            cls.__module__, cls.__qualname__ = module, qualname
        for name in MODULES:
            del sys.modules[name]


def _train_log(storage, total_iters):
    """Log as the reference trainer does: every iteration, under its global index."""
    for it in range(total_iters):
        storage.update(it, lr=1e-3 * (it + 1), smooth=False)
        storage.update(it, data_time=np.float64(0.01 * it))
        storage.update(it, total_loss=np.float64(10.0 / (it + 1)))
        if it > 0:
            storage.update(it, tau=0.996 + 1e-4 * it)


def _write(path, model, epoch, iters_per_epoch, hooks='trainer', payload=None, log=True):
    """A reference full training file after epoch ``epoch`` (0-based)."""
    storage = MetricStroge()
    if log:
        _train_log(storage, (epoch + 1) * iters_per_epoch)
    params = [torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.AdamW(params)
    params[0].grad = torch.ones(3)
    opt.step()
    if hooks == 'trainer':  # the reference trainer's save code: {class name: state_dict()}
        hook_state = {type(h).__name__: h.state_dict()
                      for h in (CheckpointerHook(), Fp16OptimizerHook())}
    else:  # hook objects with their state
        hook_state = [CheckpointerHook(), Fp16OptimizerHook()]
    if payload is not None:
        hook_state = [hook_state, Exec(payload)]
    with _reference_modules():
        torch.save(dict(epoch=epoch, num_gpus=4, model=_reference_layout(model),
                        optimizer=opt.state_dict(), metric_storage=storage, hooks=hook_state),
                   path)
    return storage


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize('arch,hooks', [('resnet', 'trainer'), ('swin', 'objects')])
def test_full_training_file_imports_with_epoch_and_iteration(tmp_path, arch, hooks, capsys):
    model = _tiny_cmid(arch)
    src = tmp_path / 'epoch_2.pth'  # written after epoch 2 (0-based): 3 epochs done
    _write(src, model, epoch=2, iters_per_epoch=5, hooks=hooks)
    assert 'Exploring' not in sys.modules
    with pytest.raises(pickle.UnpicklingError):  # plain safe loading cannot read it
        torch.load(src, weights_only=True)

    out, exp = tmp_path / 'cmid.pth', tmp_path / 'backbone.pth'
    _tool('import_reference').main([str(src), str(out), '--export', str(exp)])
    assert CALLED == []
    assert 'reference epoch 2: 3 epochs = 15 iterations done (5 per epoch, 4 GPUs)' \
        in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    # the reference resumes epoch_2.pth at epoch 3, after 3 * 5 iterations
    assert ckpt['meta']['epoch'] == 3 and ckpt['meta']['iter'] == 15
    assert int(ckpt['state_dict']['teacher.steps']) == 15
    fresh = _tiny_cmid(arch, seed=1)
    result = fresh.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in model.state_dict().items():
        if k not in ('teacher.steps', 'teacher.module.backbone.mask_token'):
            assert torch.equal(fresh.state_dict()[k], v), k
    exported = torch.load(exp, weights_only=True)['state_dict']
    key = 'backbone.conv1.weight' if arch == 'resnet' else 'backbone.patch_embed.projection.weight'
    assert torch.equal(exported[key], model.state_dict()[key])


def test_stubs_hold_dict_items_deque_appends_and_state(tmp_path):
    src = tmp_path / 'epoch_1.pth'
    written = _write(src, _tiny_cmid(), epoch=1, iters_per_epoch=3, hooks='objects')
    obj = load_reference_file(str(src))
    storage = obj['metric_storage']
    assert isinstance(storage, ReferenceStub) and repr(storage) == \
        '<stub of Exploring.utils.metric.MetricStroge>'
    # dict items of the dict subclass
    assert set(storage.dict_items) == {'lr', 'data_time', 'total_loss', 'tau'}
    # its __dict__ (setstate), with the self-reference kept as the same stub
    assert storage.state['_history'] is storage
    assert storage.state['_latest_iter'] == {'lr': 5, 'data_time': 5, 'total_loss': 5, 'tau': 5}
    # each value: a history buffer whose deque got the logged values appended, in order
    for key, buf in storage.dict_items.items():
        deque_stub = buf.state['_history']
        assert repr(deque_stub) == '<stub of collections.deque>'
        assert deque_stub.args == ((), 20)  # deque(iterable=(), maxlen=20)
        assert deque_stub.list_items == list(written[key]._history)
        assert buf.state['_count'] == written[key]._count
    assert storage.dict_items['data_time'].state['_history'].list_items[2] == np.float64(0.02)
    # hook objects with state
    ckpt_hook, fp16_hook = obj['hooks']
    assert ckpt_hook.state == {'_period': 1, '_max_to_keep': None, '_recent_checkpoints': []}
    assert fp16_hook.state['loss_scale']['_growth_tracker'] == 17
    assert fp16_hook.state['recent'].list_items == [0.5, 0.25]
    # the optimizer state is plain data
    assert torch.equal(obj['optimizer']['state'][0]['step'], torch.tensor(1.))
    assert CALLED == []


def test_importable_lookalike_classes_are_still_not_used(tmp_path):
    """Even with the reference's modules importable at load time, only stubs are built."""
    src = tmp_path / 'epoch_0.pth'
    _write(src, _tiny_cmid(), epoch=0, iters_per_epoch=2, hooks='objects')
    with _reference_modules():
        obj = load_reference_file(str(src))
    assert type(obj['metric_storage']) is not MetricStroge
    assert isinstance(obj['metric_storage'], ReferenceStub)
    assert CALLED == []


def test_payload_in_a_reference_file_does_not_run(tmp_path):
    marker = tmp_path / 'MARKER'
    src = tmp_path / 'epoch_0.pth'
    _write(src, _tiny_cmid(), epoch=0, iters_per_epoch=2,
           payload=f'open({str(marker)!r}, "w").write("pwned")')
    # with real pickle this file runs the payload (the test's own check that it is armed)
    armed = tmp_path / 'armed.pth'
    _write(armed, _tiny_cmid(), epoch=0, iters_per_epoch=2,
           payload=f'open({str(tmp_path / "ARMED")!r}, "w").write("x")')
    with _reference_modules():
        torch.load(armed, weights_only=False)
    assert (tmp_path / 'ARMED').exists()
    CALLED.clear()

    out = tmp_path / 'cmid.pth'
    _tool('import_reference').main([str(src), str(out)])
    assert not marker.exists()
    payload = load_reference_file(str(src))['hooks'][1]
    assert repr(payload) == '<stub of builtins.exec>' and 'pwned' in payload.args[0]
    assert CALLED == []


def test_progress_from_metric_storage_and_iters_per_epoch(tmp_path):
    model = _tiny_cmid()
    src = tmp_path / 'epoch_4.pth'
    _write(src, model, epoch=4, iters_per_epoch=3)
    obj = load_reference_file(str(src))
    assert reference_progress(obj) == dict(epoch=5, iter=15, iters_per_epoch=3)
    assert reference_progress(obj, 3) == dict(epoch=5, iter=15, iters_per_epoch=3)
    with pytest.raises(ValueError, match='--iters-per-epoch 4 contradicts the file.*15 '
                       'iterations in 5 epochs'):
        _tool('import_reference').main([str(src), str(tmp_path / 'x.pth'),
                                        '--iters-per-epoch', '4'])
    assert not (tmp_path / 'x.pth').exists()

    # no iteration counter in the file: --iters-per-epoch is required, and then used
    bare = tmp_path / 'epoch_6.pth'
    _write(bare, model, epoch=6, iters_per_epoch=3, log=False)
    with pytest.raises(ValueError, match='give --iters-per-epoch'):
        _tool('import_reference').main([str(bare), str(tmp_path / 'y.pth')])
    _tool('import_reference').main([str(bare), str(tmp_path / 'y.pth'),
                                    '--iters-per-epoch', '10'])
    meta = torch.load(tmp_path / 'y.pth', weights_only=True)['meta']
    assert meta['epoch'] == 7 and meta['iter'] == 70


@pytest.fixture(autouse=True)
def _clear_called():
    CALLED.clear()
    yield
    CALLED.clear()
