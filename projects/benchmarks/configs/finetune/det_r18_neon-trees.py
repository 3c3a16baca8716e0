# Fine-tuning stage of the learning-signal study (docs/learning_signal.md): Faster R-CNN + FPN on a
# ResNet-18, trained on the real hand-drawn NEON tree boxes of the train zones of
# data/rs_study/probes/trees.json and tested on tiles of the test zones. The 30 cm scenes are
# upsampled x2 (to 15 cm: a tree is then 6-72 px; finetune.py says why) by
# projects/benchmarks/finetune.py (prepare_finetune_data), which runs this config for every
# initialisation with the same schedule:
#   python projects/benchmarks/finetune.py --task det_trees --backbone B.pth --seed 0 \
#       --work-dir work_dirs/finetune/det/b_seed0
# Weights: a file {'state_dict': {stock ResNet-18 keys, no prefix}} given by finetune.py as
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH
# (without it the backbone keeps mmdet's own default init under randomness.seed).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/finetune_schedule.py',
]
custom_imports = dict(imports=['cmid_mm.downstream.det'], allow_failed_imports=False)
runner_type = 'SafeRunner'  # cmid_mm's checkpoint guarantees (SECURITY.md)

batch_size = 2

# BatchNorm in train mode (2 crops of 256 px: 128 positions per channel at stride 32), the
# same for every initialisation; frozen statistics would leave a random init unnormalised.
model = dict(
    data_preprocessor=dict(mean={{_base_.pool_mean}}, std={{_base_.pool_std}}, bgr_to_rgb=True,
                           pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='ResNet',  # plain 7x7 stem: stock mmpretrain / torchvision layout
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg={{_base_.norm_cfg}},
        norm_eval=False,
        style='pytorch'),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128, num_outs=5),
    rpn_head=dict(
        in_channels=128, feat_channels=128,
        # trees are 6-72 px (median 26) after the x2 upsampling: 16 px anchors at stride 4
        # (mmdet: 32)
        anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=512, num_classes=1)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(
        # a 256 px test tile holds up to ~40 trees
        rpn=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(score_thr=0.01, max_per_img=100)))

metainfo = dict(classes=('tree', ), palette=[(0, 200, 0)])
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, allow_negative_crop=False),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),  # (records scale_factor 1)
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type='CocoDataset', metainfo=metainfo, data_root={{_base_.data_root}},
        ann_file='det/train.json', data_prefix=dict(img='det/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset', metainfo=metainfo, data_root={{_base_.data_root}},
        ann_file='det/test.json', data_prefix=dict(img='det/test/'), test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='VOCMetric', iou_thrs=[0.5], metric='mAP', eval_mode='area')
test_cfg = dict(type='TestLoop')

# stop before training if the backbone file did not load completely (compared by value)
custom_hooks = [dict(type='PretrainedLoadCheckHook')]
# gradient clipping: the RPN / RoI losses of a random init spike in the first iterations
optim_wrapper = dict(clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    # one checkpoint, at the end (save_last); finetune.py deletes it after evaluating
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10**9, save_last=True,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=1)  # raw per-iteration times in scalars.json
