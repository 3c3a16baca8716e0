"""prepare_cpu_distributed's config rewriting (the process-group part is tested with two real
ranks in test_dist_launch.py)."""

from cmid_mm.utils.dist import _replace_syncbn


def test_syncbn_becomes_bn_everywhere_in_a_model_config():
    cfg = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
               decode_head=dict(norm_cfg=dict(type='SyncBN')),
               auxiliary_head=[dict(norm_cfg=dict(type='BN')), dict(norm_cfg=dict(type='GN'))])
    assert _replace_syncbn(cfg) is True
    assert cfg['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert cfg['decode_head']['norm_cfg']['type'] == 'BN'
    assert [h['norm_cfg']['type'] for h in cfg['auxiliary_head']] == ['BN', 'GN']
    assert _replace_syncbn(cfg) is False  # nothing left to replace
