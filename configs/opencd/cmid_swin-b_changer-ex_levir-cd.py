# CMID Swin-B in ChangerEx (open-cd: DIEncoderDecoder, feature exchange between the dates,
# Changer head) on LEVIR-CD: open-cd's standard LEVIR-CD recipe (512 px crops, batch 8, 40k
# iterations). Native open-cd: default_scope 'opencd', open-cd's models, datasets, transforms and
# visualiser.
# Run with open-cd's own tools (or cmid_mm's tools/train.py / tools/test.py):
#   export OPENCD_ROOT=/path/to/open-cd        # the checkout whose configs are inherited
#   python $OPENCD_ROOT/tools/train.py configs/opencd/cmid_swin-b_changer-ex_levir-cd.py \
#       --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_swin-b_backbone.pth \
#       train_dataloader.dataset.data_root=/data/LEVIR-CD \
#       val_dataloader.dataset.data_root=/data/LEVIR-CD \
#       test_dataloader.dataset.data_root=/data/LEVIR-CD
# Best checkpoint: highest F1 of the `changed` class (best_changed_F1_iter_*.pth).
_base_ = [
    './_base_/models/cmid_changer-ex_swin-b.py',
    './_base_/common/levircd_512x512_40k.py',
]

# ChangerEx's training augmentation (open-cd's changer_ex_* configs)
crop_size = (512, 512)
train_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgRandomRotFlip', rotate_prob=0.5, flip_prob=0.5, degree=(-20, 20)),
    dict(type='MultiImgRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='MultiImgExchangeTime', prob=0.5),
    dict(
        type='MultiImgPhotoMetricDistortion',
        brightness_delta=10,
        contrast_range=(0.8, 1.2),
        saturation_range=(0.8, 1.2),
        hue_delta=10),
    dict(type='MultiImgPackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# mmseg's Swin fine-tuning recipe: AdamW lr 6e-5, wd 0.01 (none on relative-position tables and
# norms), 1500 warm-up iterations, then linear decay to 0 at 40k
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
