"""Settings that cannot work stop at once with a message that names them (issue: late and
unclear errors)."""
import pytest
import torch

import cmid_mm  # noqa: F401
from cmid_mm.datasets.transforms import BlockMaskGenerator
from cmid_mm.models.heads.mim_head import CMIDMIMHead as MIMHead


@pytest.mark.parametrize('ratio', [0.95, 0.99])
def test_mask_ratio_that_masks_every_block_is_refused(ratio):
    # 128 px / 32 px blocks = 4x4 grid; ceil(16 * 0.95) = ceil(16 * 0.99) = 16 blocks
    with pytest.raises(ValueError, match=rf'mask_ratio={ratio} of a 4x4 block grid .* masks '
                       rf'ceil\(16 \* {ratio}\) = 16 of 16 blocks'):
        BlockMaskGenerator(input_size=128, block_size=32, mask_ratio=ratio)


def test_highest_mask_ratio_that_leaves_a_block_visible_works():
    gen = BlockMaskGenerator(input_size=128, block_size=32, mask_ratio=0.9)  # 15 of 16
    mask = gen.transform({})['mask']
    assert gen.num_masked == 15 and mask.sum() == 15 * 8 * 8 and mask.size == 32 * 32


def test_view_not_a_multiple_of_the_stride_names_the_size_and_stride():
    """A 144 px crop (fine for 16 px blocks) under a stride-32 ResNet: the feature map is 5x5
    (160 px of reconstruction), which used to be reported as a wrong encoder_stride."""
    from mmpretrain.models import ResNet
    head = MIMHead(in_channels=512, in_chans=3, encoder_stride=32)
    feat = ResNet(depth=18)(torch.zeros(1, 3, 144, 144))[-1]
    assert feat.shape[-2:] == (5, 5)
    with pytest.raises(ValueError, match=r'the views are 144x144 px, not a multiple of the '
                       r'backbone stride encoder_stride=32.*e\.g\. 128 or 160'):
        head.loss(feat, torch.zeros(1, 3, 144, 144), torch.zeros(1, 36, 36))
