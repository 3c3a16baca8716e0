# Fine-tuning stage of the learning-signal study (docs/learning_signal.md): a ResNet-18 + light
# semantic-FPN segmenter on the real SpaceNet Atlanta building masks, train zone -> test zone of
# data/rs_study/probes/building_dense.json. projects/benchmarks/finetune.py writes the data
# (prepare_finetune_data) and runs this config for every initialisation with the same schedule:
#   python projects/benchmarks/finetune.py --task seg_buildings --backbone B.pth --seed 0 \
#       --work-dir work_dirs/finetune/seg/b_seed0
# Weights: a file {'state_dict': {stock ResNet-18 keys, no prefix}} given by finetune.py as
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH
# (without it the backbone keeps mmseg's own default init under randomness.seed).
_base_ = ['mmseg::_base_/default_runtime.py', './_base_/finetune_schedule.py']
custom_imports = dict(imports=['cmid_mm.downstream.seg'], allow_failed_imports=False)
runner_type = 'SafeRunner'  # cmid_mm's checkpoint guarantees (SECURITY.md)

scale = 1.0  # native 0.5 m, the scale of the pretraining pool's SpaceNet tiles
batch_size = 4

# BatchNorm in train mode in backbone and heads: 4 crops of 256 px give >= 256 positions per
# channel even at stride 32, enough for batch statistics; the same for every initialisation.
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean={{_base_.pool_mean}}, std={{_base_.pool_std}},
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size={{_base_.crop_size}},
        test_cfg=dict(size_divisor=32)),
    backbone=dict(
        type='ResNet',  # plain 7x7 stem (deep_stem=False): stock mmpretrain / torchvision layout
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg={{_base_.norm_cfg}},
        norm_eval=False,
        style='pytorch'),
    neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[64, 64, 64, 64],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=64,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        # buildings are 4 % of the pixels: without a class weight 60 iterations of a random
        # init predict background everywhere (IoU 0, measured); weight ~ 1 / sqrt(frequency)
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=[1.0, 5.0])),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

metainfo = dict(classes=('background', 'building'), palette=[[0, 0, 0], [255, 0, 0]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='Resize', scale_factor=scale, keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    # one training image (the train zone): every sample is a new random crop of it
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset', metainfo=metainfo, data_root={{_base_.data_root}},
        data_prefix=dict(img_path='seg/img_dir/train', seg_map_path='seg/ann_dir/train'),
        img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='BaseSegDataset', metainfo=metainfo, data_root={{_base_.data_root}},
        data_prefix=dict(img_path='seg/img_dir/test', seg_map_path='seg/ann_dir/test'),
        img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
        pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(type='TestLoop')

# stop before training if the backbone file did not load completely (compared by value)
custom_hooks = [dict(type='SegLabelCheckHook'), dict(type='PretrainedLoadCheckHook')]
# mmseg's default_runtime sets no hooks (its schedules do): all of them here
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    logger=dict(type='LoggerHook', interval=1),
    # one checkpoint, at the end (save_last); finetune.py deletes it after evaluating
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10**9, save_last=True,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=1)  # raw per-iteration times in scalars.json
