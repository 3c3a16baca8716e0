"""One transform finder for the hooks: find_transforms (loading.py)."""
from mmengine.dataset import Compose, ConcatDataset, RepeatDataset
from mmpretrain.datasets.transforms import MultiView

from cmid_mm.datasets.transforms import PerSampleSeed
from cmid_mm.datasets.transforms.loading import (LoadRSImageFromFile, find_image_loaders,
                                                 find_transforms)


class _Dataset:
    def __init__(self, pipeline):
        self.pipeline = Compose(pipeline)


def test_finds_nested_transforms_through_wrappers_once():
    seed = PerSampleSeed()
    inner = PerSampleSeed()
    loader = LoadRSImageFromFile()
    view = MultiView(num_views=2, transforms=[[PerSampleSeed()]])
    nested = [t for c in view.pipelines for t in c.transforms]
    ds = _Dataset([seed, loader, view])
    other = _Dataset([inner])
    wrapped = RepeatDataset.__new__(RepeatDataset)
    wrapped.dataset = ConcatDataset.__new__(ConcatDataset)
    wrapped.dataset.datasets = [ds, other]
    found = find_transforms(wrapped, PerSampleSeed)
    # MultiView's pipelines (mmpretrain) are searched too; shared objects counted once
    assert found[0] is seed and found[-1] is inner
    assert found[1:-1] == nested and len(nested) == 1
    assert find_image_loaders(wrapped) == [loader]
    assert find_transforms(ds.pipeline, (PerSampleSeed, LoadRSImageFromFile))[:2] == [seed, loader]
