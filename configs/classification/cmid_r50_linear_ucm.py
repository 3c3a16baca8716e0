# Linear probe of a CMID ResNet-50 on UC Merced (80/20 split): the whole backbone is frozen
# (frozen_stages=4, BN statistics frozen with norm_eval=True) and only a linear layer on the
# globally pooled 2048-d feature is trained; mmpretrain's linear-evaluation recipe for MoCo v2
# (SGD momentum 0.9, no weight decay, lr 30 per 256 images, steps at epochs 60 and 80 of 100,
# random-resized-crop + flip only), here at batch 64 on one GPU (lr 7.5).
#   python tools/train.py configs/classification/cmid_r50_linear_ucm.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    './_base_/datasets/ucm_ft_224.py',
    'mmpretrain::_base_/schedules/imagenet_sgd_steplr_100e.py',
    './_base_/scene_runtime.py',
]

# CMID weights (see cmid_r50_ft_ucm.py); override model.backbone.init_cfg.checkpoint=PATH.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(
        type='ResNet',  # plain ResNet, as CMID pretrains (not ResNetV1c)
        frozen_stages=4,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    head=dict(num_classes=21))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=30. * 64 / 256, momentum=0.9, weight_decay=0.))
auto_scale_lr = dict(base_batch_size=64, enable=False)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
