# CMID with a ResNet-18 at 96 px (3x3 last-stage cells), the demo's heads, the study's shared
# settings. Ablations change loss_weights / the frequency-loss weight only.
_base_ = ['./study_common.py', '../../_base_/models/cmid_resnet50.py']

crop_and_flip = [
    dict(
        type='RandomResizedCropWithBox',
        scale={{_base_.crop_size}},
        crop_ratio_range=(0.3, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
# 32 px blocks = one last-stage cell, as in the reference (7x7 at 224 px): 3x3 blocks, 6 masked.
block_mask = dict(
    type='BlockMaskGenerator', input_size={{_base_.crop_size}}, block_size=32, mask_ratio=0.6)
colour_aug = [
    dict(
        type='RandomApply',
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
        ],
        prob=0.8),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=1.0),
    dict(type='RandomGaussianNoise', prob=0.6, var_range=(10., 50.)),
    dict(type='Solarize', thr=128, prob=0.2),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
train_pipeline = [
    dict(type='LoadRSImageFromFile', channels=3, min_size={{_base_.crop_size}}),
    dict(
        type='CMIDMultiView',
        num_views=[1, 1],
        transforms=[crop_and_flip + [block_mask], crop_and_flip + colour_aug + [block_mask]]),
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
    local_loss=dict(out_channels=1024, warmup_teacher_temp_epochs=3),
    num_matches=4,  # of 3x3 cells: the paper's 20/49 share
    base_momentum=0.01)  # teacher decay 0.99 -> 1 (cosine): short budget, as MoCo / BYOL here

optim_wrapper = dict(
    constructor='CMIDOptimWrapperConstructor',  # the EMA teacher is not optimised
    paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0.0)}))
# Iteration loop: the warm-up progresses per iteration (fractional epochs).
custom_hooks = [dict(type='TeacherTempWarmupHook', by_epoch=False)]
sync_bn = None
