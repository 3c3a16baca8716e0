"""Exported CMID weights really land in the change-detection backbones (counted key by key)."""
import torch

from tests.test_downstream.test_changedet.cd_utils import (build_changedet, changedet_config,
                                                         export_tiny_cmid)


R18_UPERNET = {
    'model.backbone.depth': 18,
    'model.decode_head.in_channels': [128, 256, 512, 1024],
    'model.decode_head.channels': 32,
    'model.auxiliary_head.in_channels': 512,
    'model.auxiliary_head.channels': 16,
}


def _exported(path):
    sd = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in sd)
    return {k[len('backbone.'):]: v for k, v in sd.items()}


def test_resnet_upernet_config_loads_every_backbone_key(cmid_r18_backbone):
    cfg = changedet_config('siam-upernet_cmid-r50_40k_levir-cd-512x512.py',
                  dict(R18_UPERNET, **{'model.backbone.init_cfg.checkpoint': cmid_r18_backbone}))
    model = build_changedet(cfg)
    exported, own = _exported(cmid_r18_backbone), model.backbone.state_dict()
    # ResNet-18 = torchvision's 122 state entries minus fc.weight / fc.bias
    assert len(own) == len(exported) == 120
    assert set(own) == set(exported)  # nothing missing, nothing unexpected
    same = [k for k in own if torch.equal(own[k], exported[k])]
    assert len(same) == 120


def test_bit_config_loads_the_three_stages_it_uses(cmid_r18_backbone):
    cfg = changedet_config('bit_cmid-r50_200e_cdd-256x256.py', {
        'model.backbone.depth': 18,
        'model.decode_head.in_channels': 256,
        'model.backbone.init_cfg.checkpoint': cmid_r18_backbone
    })
    model = build_changedet(cfg)
    exported, own = _exported(cmid_r18_backbone), model.backbone.state_dict()
    assert set(own) <= set(exported)  # no missing key
    # unused: stage 4 = 2 BasicBlocks: 2 x (conv, BN x5, conv, BN x5) + downsample (conv, BN x5)
    assert sorted({k.split('.')[0] for k in set(exported) - set(own)}) == ['layer4']
    assert len(exported) - len(own) == 30
    assert sum(torch.equal(own[k], exported[k]) for k in own) == len(own) == 90


def test_swin_config_loads_cmid_swin_with_another_window(tmp_path):
    export = export_tiny_cmid('swin', tmp_path)  # window 2 in CMID, 7 downstream
    cfg = changedet_config('siam-upernet_cmid-swin-b_40k_levir-cd-512x512.py', {
        'model.backbone.embed_dims': 16,
        'model.backbone.depths': [1, 1, 1, 1],
        'model.backbone.num_heads': [1, 1, 2, 2],
        'model.backbone.init_cfg.checkpoint': export,
        'model.decode_head.in_channels': [32, 64, 128, 256],
        'model.decode_head.channels': 32,
        'model.auxiliary_head.in_channels': 128,
        'model.auxiliary_head.channels': 16,
    })
    model = build_changedet(cfg)
    exported, own = _exported(export), model.backbone.state_dict()
    assert len(exported) == 67 and set(exported) <= set(own)  # nothing unexpected
    # missing: the 4 index buffers (rebuilt from the window) and the stage-0..2 output norms,
    # which CMID (out_indices=(3,)) never trained
    assert sorted(set(own) - set(exported)) == sorted(
        [f'stages.{i}.blocks.0.attn.w_msa.relative_position_index' for i in range(4)]
        + [f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')])
    tables = [k for k in exported if k.endswith('relative_position_bias_table')]
    assert len(tables) == 4
    for k in tables:  # 3x3 offsets (window 2) resized to 13x13 (window 7)
        assert exported[k].shape[0] == 9 and own[k].shape == (169, exported[k].shape[1])
        assert (own[k].mean() - exported[k].mean()).abs() < 0.5 * exported[k].std()
    same = [k for k in exported if k not in tables and torch.equal(own[k], exported[k])]
    assert len(same) == 67 - 4
