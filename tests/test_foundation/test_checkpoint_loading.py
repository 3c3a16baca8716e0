"""mmengine Runner checkpoints load under torch's safe (weights_only) loading once cmid_mm is
imported, and safety stays on for everything else."""
import io
import os.path as osp
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import cmid_mm  # noqa: F401  (registers the allow-list)
from cmid_mm.utils import register_safe_globals, safe_global_names


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        pred = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((pred.squeeze(1) - torch.stack(labels))**2).mean())
        return pred


class ToyData(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.rand(2, generator=g)
        return dict(inputs=x, labels=x.sum())


def _runner(work_dir, max_iters, resume=False):
    torch.manual_seed(0)  # the model is built before the Runner seeds anything
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], by_epoch=False, end=4),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1000),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0),
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'toy_{max_iters}_{resume}')


def test_runner_checkpoint_needs_exactly_the_allow_list(tmp_path):
    runner = _runner(str(tmp_path), max_iters=2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    torch.serialization.clear_safe_globals()  # see what torch alone would refuse
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    finally:
        register_safe_globals()
    assert unsafe, 'a Runner checkpoint should hold non-tensor globals (message hub, numpy)'
    allowed = safe_global_names()
    assert unsafe <= allowed, f'not allow-listed: {sorted(unsafe - allowed)}'
    ckpt_obj = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert ckpt_obj['meta']['iter'] == 2
    assert 'message_hub' in ckpt_obj


def test_runner_resumes_under_safe_loading(tmp_path):
    from packaging.version import Version
    assert Version(torch.__version__.split('+')[0]) >= Version('2.6')  # safe loading default
    _runner(str(tmp_path), max_iters=2).train()
    resumed = _runner(str(tmp_path), max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    ref = _runner(str(tmp_path / 'ref'), max_iters=4)
    ref.train()
    # Resuming restored model, optimizer momentum, scheduler and data order: same weights.
    for a, b in zip(resumed.model.parameters(), ref.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


class _Evil:

    def __reduce__(self):
        return (print, ('executed',))


def test_safety_is_not_turned_off():
    buf = io.BytesIO()
    torch.save({'x': _Evil()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf, weights_only=True)


class _GetattrEscape:
    """Pickles as getattr(HistoryBuffer, '__init__'): a step towards arbitrary attributes."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_restricted_to_history_buffer_statistics():
    buf = io.BytesIO()
    torch.save({'x': _GetattrEscape()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="getattr.*'__init__'"):
        torch.load(buf, weights_only=True)
