"""IA_SwinTransformer without interaction layers is mmseg's Swin run on each date (same
parameters, same names); bad arguments are refused with what to do."""
import pytest
import torch
from mmseg.models.backbones import SwinTransformer

from cmid_mm.downstream.changedet import IA_SwinTransformer

SMALL = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=3,
             pretrain_img_size=48, out_indices=(0, 1, 2, 3), drop_path_rate=0.)


def test_without_interaction_each_date_gets_mmseg_swin_features():
    torch.manual_seed(0)
    ia, plain = IA_SwinTransformer(**SMALL), SwinTransformer(**SMALL)
    ia.eval()  # (mmseg's Swin.train() returns None: no chaining)
    plain.eval()
    # the same parameter names: a Swin checkpoint (CMID export) loads into both alike
    plain.load_state_dict(ia.state_dict(), strict=True)
    a, b = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        outs = ia(a, b)
        pa, pb = plain(a), plain(b)
    assert len(outs) == 4
    for i, (out, size) in enumerate(zip(outs, (12, 6, 3, 2))):  # patch merging pads 3 -> 4
        c = 16 * 2**i
        assert out.shape == (2, 2 * c, size, size)
        # the same kernels on the same batch: bit-for-bit
        assert torch.equal(out[:, :c], pa[i]) and torch.equal(out[:, c:], pb[i])


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match='interaction_cfg has 2 entries but the backbone has '
                                         '4 stages'):
        IA_SwinTransformer(interaction_cfg=(None, None), **SMALL)
    ia = IA_SwinTransformer(**SMALL)
    with pytest.raises(TypeError, match=r'forward\(img_from, img_to\)'):
        ia(torch.rand(1, 3, 48, 48))
    with pytest.raises(ValueError, match='differ in shape'):
        ia(torch.rand(1, 3, 48, 48), torch.rand(1, 3, 32, 32))
