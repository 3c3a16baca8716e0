"""BlockMaskGenerator draws what mmpretrain's SimMIMMaskGenerator draws where both apply (the
class docstring says why it does not subclass it)."""
import numpy as np
import pytest
from mmpretrain.datasets.transforms import SimMIMMaskGenerator

from cmid_mm.datasets.transforms import BlockMaskGenerator


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_same_mask_as_simmim_at_cmid_defaults(seed):
    ours = BlockMaskGenerator(input_size=224, block_size=32, token_stride=4, mask_ratio=0.6)
    simmim = SimMIMMaskGenerator(input_size=224, mask_patch_size=32, model_patch_size=4,
                                 mask_ratio=0.6)
    np.random.seed(seed)
    a = ours.transform({})['mask']
    np.random.seed(seed)
    b = simmim.transform({})['mask']
    assert a.shape == b.shape == (56, 56) and a.sum() == 30 * 64
    np.testing.assert_array_equal(a, b)


def test_where_they_differ():
    """The documented reasons: rounding of the masked count and rectangular views."""
    assert BlockMaskGenerator(input_size=320, block_size=32, mask_ratio=0.07).num_masked == 7
    assert SimMIMMaskGenerator(input_size=320, mask_patch_size=32, mask_ratio=0.07).mask_count == 8
    assert BlockMaskGenerator(input_size=(64, 128)).transform({})['mask'].shape == (16, 32)
