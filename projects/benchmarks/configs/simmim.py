# mmpretrain's SimMIM (algorithm, linear decoder, head, mask generator, view pipeline) with a
# ResNet-18 at the study's input size, pool, batch, optimizer and budget. mmpretrain ships SimMIM
# for Swin / ViT only; the backbone here is cmid_mm's CMIDResNet: a stock ResNet-18 whose
# stride-4 stem output takes a learnable mask token, in SimMIM's 'replace' mode (the token
# replaces the masked cells' features, as SimMIM's mask token replaces patch embeddings).
_base_ = ['./_base_/study_common.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale={{_base_.crop_size}}, crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    # 32 px mask blocks (one last-stage cell, as CMID here), 60 % masked, at the stem's
    # stride-4 grid
    dict(type='SimMIMMaskGenerator', input_size={{_base_.crop_size}}, mask_patch_size=32,
         model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='SimMIM',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='CMIDResNet', depth=18, out_indices=(3, ), norm_cfg=dict(type='BN'),
                  zero_init_residual=False, mask_mode='replace'),
    neck=dict(type='SimMIMLinearDecoder', in_channels=512, encoder_stride=32),
    head=dict(type='SimMIMHead', patch_size=4,
              loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))
# the mask token gets no weight decay (as SimMIM's and CMID's)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0.0)}))
