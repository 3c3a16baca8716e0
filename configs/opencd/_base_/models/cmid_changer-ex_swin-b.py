# ChangerEx on a CMID Swin-B: open-cd's _base_/models/changer_r18.py with the backbone
# replaced by mmseg.IA_SwinTransformer (cmid_mm: mmseg's Swin taking both dates, with open-cd's
# exchange layers between stages; open-cd has IA backbones for ResNet / ResNeSt / MiT only).
# mmseg's Swin loads init_cfg.checkpoint itself: it strips the export's `backbone.` prefix
# (init_cfg.prefix is not read), resizes the relative-position bias tables to window_size and
# logs nothing: PretrainedLoadCheckHook (cmid_runtime.py) counts what loaded. New by design:
# the relative_position_index buffers and the output norms norm0-2 (CMID trains norm3 only).
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = ['{{$OPENCD_ROOT:}}/configs/_base_/models/changer_r18.py']

checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmseg.IA_SwinTransformer',
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
        norm_cfg=dict(type='LN', requires_grad=True),
        interaction_cfg=(None, dict(type='SpatialExchange', p=1 / 2),
                         dict(type='ChannelExchange', p=1 / 2),
                         dict(type='ChannelExchange', p=1 / 2)),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(
        in_channels=[128, 256, 512, 1024],  # per date; the head splits the pair
        channels=256,
        sampler=dict(type='mmseg.OHEMPixelSampler', thresh=0.7, min_kept=100000)))
