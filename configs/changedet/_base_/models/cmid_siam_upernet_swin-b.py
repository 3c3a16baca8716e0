# Siamese UperNet on a CMID Swin-B (mmseg's upernet_swin at Swin-B size, siamese).
# mmseg's SwinTransformer loads init_cfg.checkpoint itself: it strips the `backbone.` prefix
# of an exported CMID file (init_cfg.prefix is not read), resizes relative-position bias
# tables to window_size, and loads non-strictly WITHOUT logging missing keys. CMID pretrains
# with out_indices=(3,), so norm0..norm2 (the extra output norms of stages 0-2) start fresh.
_base_ = ['./cmid_siam_upernet_r50.py']
backbone_norm_cfg = dict(type='LN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
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
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,  # CMID paper, Swin-B segmentation
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=backbone_norm_cfg),
    decode_head=dict(in_channels=[v * 2 for v in [128, 256, 512, 1024]]),
    auxiliary_head=dict(in_channels=512 * 2))
