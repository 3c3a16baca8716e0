# mmpretrain's MoCo (v2 recipe) with a ResNet-18 at the study's input size, pool, batch,
# optimizer and budget. Pipeline: mmpretrain's mocov2 view pipeline with scale 96.
_base_ = ['./_base_/study_common.py']

view_pipeline = [
    dict(type='RandomResizedCrop', scale={{_base_.crop_size}}, crop_ratio_range=(0.2, 1.),
         backend='pillow'),
    dict(
        type='RandomApply',
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
        ],
        prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='MoCo',
    data_preprocessor={{_base_.data_preprocessor}},
    queue_len={{_base_.queue_len}},
    feat_dim=128,
    momentum=0.01,  # key encoder decay 0.99 (mmpretrain default 0.999 is for 200 epochs)
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=512, out_channels=128,
              with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2))
