# mmpretrain's BYOL with a ResNet-18 at the study's input size, pool, batch, optimizer and
# budget. Pipeline: mmpretrain's byol view pipelines (asymmetric blur / solarize) with scale 96.
_base_ = ['./_base_/study_common.py']

_common = [
    dict(type='RandomResizedCrop', scale={{_base_.crop_size}}, interpolation='bicubic',
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
        ],
        prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
view_pipeline1 = _common + [
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=1.),
    dict(type='Solarize', thr=128, prob=0.),
]
view_pipeline2 = _common + [
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1], transforms=[view_pipeline1, view_pipeline2]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='BYOL',
    data_preprocessor={{_base_.data_preprocessor}},
    base_momentum=0.01,  # target decay 0.99 -> 1 (cosine), BYOL's default
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=4096, out_channels=256,
              num_layers=2, with_bias=True, with_last_bn=False, with_avg_pool=True),
    head=dict(
        type='LatentPredictHead',
        predictor=dict(type='NonLinearNeck', in_channels=256, hid_channels=4096,
                       out_channels=256, num_layers=2, with_bias=True, with_last_bn=False,
                       with_avg_pool=False),
        loss=dict(type='CosineSimilarityLoss')))
