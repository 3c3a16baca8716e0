"""IA_SwinTransformer with open-cd's exchange layers, built from an open-cd config scope."""
import torch
from mmengine.registry import DefaultScope
from mmseg.models.backbones import SwinTransformer

SMALL = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=3,
             pretrain_img_size=48, out_indices=(0, 1, 2, 3), drop_path_rate=0.)


def test_spatial_exchange_after_the_last_stage_swaps_the_dates_columns(opencd_root):
    """open-cd's SpatialExchange(p=1/2) swaps every second column of the two dates' maps.
    After the last stage only the (per-position) output norm follows, so the IA output is
    mmseg Swin's per-date output with the even columns swapped; earlier stages unchanged."""
    import opencd.models  # noqa: F401
    from opencd.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('opencd'):  # as in an open-cd config
        ia = MODELS.build(dict(
            type='mmseg.IA_SwinTransformer',
            interaction_cfg=(None, None, None, dict(type='SpatialExchange', p=1 / 2)), **SMALL))
    ia.eval()
    assert type(ia.ccs['3']).__module__.startswith('opencd.')
    plain = SwinTransformer(**SMALL)
    plain.eval()
    plain.load_state_dict(ia.state_dict())
    a, b = torch.rand(1, 3, 96, 48), torch.rand(1, 3, 96, 48)  # H != W: rows vs columns
    with torch.no_grad():
        outs = ia(a, b)
        pa, pb = plain(a), plain(b)
    for i in range(3):
        assert torch.equal(outs[i], torch.cat([pa[i], pb[i]], dim=1))
    c = 128
    last, even = outs[3], torch.arange(pa[3].shape[-1]) % 2 == 0
    assert last.shape == (1, 2 * c, 3, 2) and even.tolist() == [True, False]
    assert torch.allclose(last[:, :c][..., even], pb[3][..., even], atol=1e-6)
    assert torch.allclose(last[:, :c][..., ~even], pa[3][..., ~even], atol=1e-6)
    assert torch.allclose(last[:, c:][..., even], pa[3][..., even], atol=1e-6)
    assert torch.allclose(last[:, c:][..., ~even], pb[3][..., ~even], atol=1e-6)
