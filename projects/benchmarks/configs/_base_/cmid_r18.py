# CMID with a ResNet-18 at 96 px (3x3 last-stage cells), the demo's heads, the study's shared
# settings. Ablations change loss_weights / the frequency-loss weight only.
_base_ = [
    './study_common.py',
    '../../../../configs/_base_/models/cmid_resnet50.py',
    '../../../../configs/_base_/datasets/cmid_views.py',  # crop_and_flip, colour_aug: the CMID views
]

crop_and_flip = [
    dict(_base_.crop_and_flip[0], scale=_base_.crop_size), _base_.crop_and_flip[1]]
# 32 px blocks = one last-stage cell, as in the reference (7x7 at 224 px): 3x3 blocks, 6 masked.
block_mask = dict(
    type='BlockMaskGenerator', input_size={{_base_.crop_size}}, block_size=32, mask_ratio=0.6)
train_pipeline = [
    dict(type='LoadRSImageFromFile', channels=3, min_size={{_base_.crop_size}}),
    dict(
        type='CMIDMultiView',
        num_views=[1, 1],
        transforms=[crop_and_flip + [block_mask],
                    crop_and_flip + _base_.colour_aug + [block_mask]]),
    dict(
        type='PackInputs',
        algorithm_keys=['crop_bbox', 'crop_src_shape', 'flip'],
        meta_keys=['img_path']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    # zero_init_residual=False as MoCo / BYOL / random here (and torchvision, which the
    # reference uses); mmpretrain's ResNet default zero-initialises each block's last BN
    backbone=dict(depth=18, zero_init_residual=False),
    mim_head=dict(in_channels=512),
    global_neck=dict(in_channels=512, hid_channels=512, out_channels=128),
    # 128 keys (2 steps of 2 views x 32): the pool has only ~200 images, a longer queue would
    # hold older keys of the current images as negatives. MoCo-v2 here uses 128 too.
    global_head=dict(feat_dim=128, queue_len={{_base_.queue_len}}),
    local_neck=dict(
        in_channels=512, hid_channels=512, bottleneck_channels=128, out_channels=1024),
    # teacher-temperature warm-up in (fractional) epochs; the runner sets it to 30 % of the
    # budget
    local_head=dict(out_channels=1024, warmup_teacher_temp_epochs=3),
    num_matches=4,  # of 3x3 cells: the paper's 20/49 share
    base_momentum=0.01)  # teacher decay 0.99 -> 1 (cosine): short budget, as MoCo / BYOL here

optim_wrapper = dict(
    constructor='CMIDOptimWrapperConstructor',  # the EMA teacher is not optimised
    paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0.0)}))
# Iteration loop: the warm-up progresses per iteration (fractional epochs).
custom_hooks = [dict(type='TeacherTempWarmupHook', by_epoch=False)]
sync_bn = None
