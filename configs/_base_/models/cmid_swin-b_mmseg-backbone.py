# The CMID Swin-B backbone of the change-detection models (configs/changedet, mmseg scope, and
# configs/opencd): mmseg's SwinTransformer at Swin-B size, as CMID pretrains it (window 7,
# drop path 0.3 as in the CMID paper's Swin-B segmentation). A variable, not a model: the
# Swin-B configs list this file in `_base_` and copy `cmid_swin_b` into model.backbone with
# their changes (stages, type) and the Pretrained init_cfg. `mmseg.` names the registry, so
# it resolves under both default scopes.
cmid_swin_b = dict(
    type='mmseg.SwinTransformer',
    pretrain_img_size=224,
    embed_dims=128,
    patch_size=4,
    window_size=7,
    mlp_ratio=4,
    depths=[2, 2, 18, 2],
    num_heads=[4, 8, 16, 32],
    strides=(4, 2, 2, 2),
    out_indices=(0, 1, 2, 3),
    qkv_bias=True,
    patch_norm=True,
    drop_path_rate=0.3,
    use_abs_pos_embed=False,
    act_cfg=dict(type='GELU'),
    norm_cfg=dict(type='LN', requires_grad=True))
