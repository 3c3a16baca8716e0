"""ExactResumeHook: arms PerSampleSeed, reseeds by position, and flags what breaks an exact
resume (on a stand-in runner; the end-to-end resume is tests/integration/test_exact_resume.py)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import RepeatDataset
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from cmid_mm.datasets.transforms import PerSampleSeed
from cmid_mm.engine.hooks import ExactResumeHook


class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(msg)

    info = warning


class _Loader:
    def __init__(self, dataset, sampler_seed, iters_per_epoch=4):
        self.dataset, self.n = dataset, iters_per_epoch
        self.sampler = SimpleNamespace(seed=sampler_seed)

    def __len__(self):
        return self.n


def _runner(dataset, loop_cls=EpochBasedTrainLoop, epoch=0, it=0, seed=5, sampler_seed=5):
    return SimpleNamespace(
        train_dataloader=_Loader(dataset, sampler_seed), train_loop=loop_cls.__new__(loop_cls),
        logger=_Logger(), hooks=[], seed=seed, epoch=epoch, iter=it,
        _randomness_cfg=dict(seed=seed))


def _dataset(*transforms):
    return SimpleNamespace(pipeline=SimpleNamespace(transforms=list(transforms)))


def test_hook_arms_the_pipeline_and_reseeds_by_position():
    seed_t = PerSampleSeed()
    nested = SimpleNamespace(transforms=[SimpleNamespace(transforms=[seed_t])])
    runner = _runner(_dataset(nested), sampler_seed=99)  # e.g. randomness.seed=None resume
    hook = ExactResumeHook()
    hook.before_train(runner)
    assert runner.train_dataloader.sampler.seed == 5 and not [
        m for m in runner.logger.lines if 'PerSampleSeed' in m]
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert seed_t.epoch == 2

    def step(it):
        runner.iter = it
        hook.before_train_iter(runner, 0)
        return torch.rand(2).tolist() + np.random.rand(2).tolist()

    assert step(7) == step(7) and step(7) != step(8)


def test_hook_flags_what_breaks_an_exact_resume():
    hook = ExactResumeHook()
    runner = _runner(_dataset(), epoch=1, it=6)  # 4 iterations per epoch: mid-epoch
    hook.before_train(runner)
    assert any('no PerSampleSeed' in m for m in runner.logger.lines)
    assert any('not an exact continuation' in m for m in runner.logger.lines)

    repeated = RepeatDataset.__new__(RepeatDataset)
    repeated.dataset = _dataset(PerSampleSeed())
    with pytest.raises(ValueError, match='RepeatDataset'):
        hook.before_train(_runner(repeated))
    with pytest.raises(TypeError, match='epoch-based train loop'):
        hook.before_train(_runner(_dataset(PerSampleSeed()), loop_cls=IterBasedTrainLoop))
