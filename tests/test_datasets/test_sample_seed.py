"""PerSampleSeed: the random numbers of a sample are a function of (seed, epoch, sample), also
in persistent data-loader workers."""
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cmid_mm.datasets.transforms import PerSampleSeed


def _draw(transform, idx, path='img.png'):
    transform(dict(sample_idx=idx, img_path=path))
    return np.random.rand(3).tolist() + [np.random.randint(1 << 30), random.random()]


def test_per_sample_seed_is_a_function_of_seed_epoch_and_sample():
    t = PerSampleSeed()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    assert t(dict(sample_idx=0)) == dict(sample_idx=0)  # not armed: RNGs untouched
    assert np.array_equal(np.random.get_state()[1], before)

    t.set_epoch(seed=7, epoch=2)
    first = _draw(t, 5)
    np.random.rand(100)  # whatever was drawn before does not matter
    assert _draw(t, 5) == first
    other = PerSampleSeed()  # another instance (e.g. in a worker), same arming
    other.set_epoch(seed=7, epoch=2)
    assert _draw(other, 5) == first
    assert _draw(t, 6) != first
    assert _draw(t, 5, 'other.png') != first
    assert _draw(t, 5, '/moved/data/img.png') == first  # only the file name counts
    t.set_epoch(seed=7, epoch=3)
    assert _draw(t, 5) != first
    t.set_epoch(seed=8, epoch=2)
    assert _draw(t, 5) != first

    with pytest.raises(KeyError, match='sample_idx'):
        t(dict(img_path='x.png'))
    with pytest.raises(ValueError, match='epoch must be >= 0'):
        t.set_epoch(0, -1)


class _Draws(Dataset):
    """Each item: the numbers a pipeline starting with PerSampleSeed would draw."""

    def __init__(self, transform, n):
        self.transform, self.n = transform, n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        self.transform(dict(sample_idx=idx))
        return torch.tensor(np.random.randint(1 << 30, size=2))


def test_persistent_workers_follow_the_epoch():
    """Persistent workers are started once; the epoch set later in the main process reaches
    them (shared memory), and they draw what the main process draws alone."""
    t = PerSampleSeed()
    data = _Draws(t, 6)
    loader = DataLoader(data, batch_size=2, num_workers=2, persistent_workers=True)
    try:
        per_epoch = []
        for epoch in range(2):
            t.set_epoch(seed=3, epoch=epoch)
            got = torch.cat(list(loader))
            alone = torch.stack([data[i] for i in range(len(data))])
            assert torch.equal(got, alone), f'epoch {epoch}'
            per_epoch.append(got)
        assert not torch.equal(per_epoch[0], per_epoch[1])
    finally:
        del loader  # stops the workers
