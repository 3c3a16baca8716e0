import pytest
import torch

from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask


def test_upsample_mask_repeats_each_token():
    mask = torch.tensor([[[1, 0], [0, 1]]], dtype=torch.uint8)  # (1, 2, 2)
    up = upsample_mask(mask, (4, 6))
    assert up.shape == (1, 1, 4, 6) and up.dtype == torch.float32
    expected = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                             [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]], dtype=torch.float32)
    assert torch.equal(up[0, 0], expected)
    with pytest.raises(ValueError, match=r'does not divide the image size \(5, 6\)'):
        upsample_mask(mask, (5, 6))


def test_mean_fill_uses_per_image_per_channel_mean_over_all_pixels():
    img = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).view(2, 2, 2, 2)
    pix = torch.tensor([[[[1., 0.], [0., 0.]]], [[[0., 0.], [0., 1.]]]])  # (2, 1, 2, 2)
    out = mean_fill(img, pix)
    # image 0: channel means (0+1+2+3)/4 = 1.5 and (4+5+6+7)/4 = 5.5 at pixel (0, 0)
    assert out[0, :, 0, 0].tolist() == [1.5, 5.5]
    # image 1: channel means 9.5 and 13.5 at pixel (1, 1)
    assert out[1, :, 1, 1].tolist() == [9.5, 13.5]
    keep = pix.expand_as(img) == 0
    assert torch.equal(out[keep], img[keep])  # unmasked pixels untouched, bit for bit
