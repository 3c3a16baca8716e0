# UperNet + FCN auxiliary head on a CMID Swin-B (embed 128, depths 2-2-18-2, heads 4-8-16-32),
# drop path 0.3 (method.md §8). Window 12 at 512 px, as mmseg's Swin-B 512x512 configs; CMID
# pretrains with window 7 at 224 px. mmseg's Swin loads weights itself (init_cfg.checkpoint
# only; it strips `backbone.` and bicubically resizes the relative-position bias tables to the
# new window). The CMID export drops the `relative_position_index` buffers, which otherwise
# would not fit a different window. Only norm3 is pretrained (CMID uses the last stage);
# norm0..norm2 in front of the decode head start from their default initialisation.
# Inputs use mmseg's ImageNet mean / std, as the reference's downstream code (method.md §2).
_base_ = ['mmseg::_base_/models/upernet_swin.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(
        pretrain_img_size=224,
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        drop_path_rate=0.3),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
