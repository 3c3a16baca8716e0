# Faster R-CNN + FPN on a CMID Swin-B (window 7, as pretrained), DIOR horizontal boxes
# (20 classes): 12 epochs, 8 GPUs x 2 images, mmdet's Swin recipe (AdamW lr 1e-4 wd 0.05, no
# decay on position tables and norms, 1000-iteration warm-up, steps at epochs 8 and 11) with
# the paper's Swin-B drop path 0.3 (method.md §8), 800x800 images. RoIAlign.
# mmdet's Swin must have convert_weights=False: True runs a converter for Microsoft's original
# key names (KeyError on CMID's mmpretrain names); False keeps the file's `backbone.*` keys,
# which the CMID export has. init_cfg.prefix is ignored by mmdet's Swin.
# Weights (CKPT = a CMID pretraining checkpoint from tools/train.py):
#   python tools/model_converters/export_cmid.py CKPT work_dirs/cmid_swin-b_backbone.pth
#   bash tools/dist_train.sh configs/detection/faster-rcnn_cmid-swin-b-w7_fpn_1x_dior.py 8
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (the variable
# `checkpoint` is copied into the model when the config is read; overriding it does nothing).
_base_ = ['./faster-rcnn_cmid-r50_fpn_1x_dior.py']
checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=224,
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
