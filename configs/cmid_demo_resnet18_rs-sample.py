# Demo: CMID with a ResNet-18 on the embedded real remote-sensing sample (data/rs_sample/:
# Sentinel-2, Landsat-8 and NEON crops), 128 px views, 100 iterations (~1.4 s each on
# 2 lightly loaded CPU cores; much slower on a busy machine).
#   python tools/train.py configs/cmid_demo_resnet18_rs-sample.py
# Everything is the reference method at a smaller scale: 4x4 blocks of 32 px (10 of 16 masked),
# a 4x4 last-stage map (6 of 16 cells matched, the paper's 20/49 share), smaller heads and queue.
_base_ = [
    '_base_/models/cmid_resnet50.py',
    '_base_/schedules/adan_coslr-warmup10e_200e.py',
    '_base_/default_runtime.py',
    '_base_/datasets/cmid_views.py',  # crop_and_flip, colour_aug: the CMID view transforms
]

crop_size = 128
crop_and_flip = [dict(_base_.crop_and_flip[0], scale=crop_size), _base_.crop_and_flip[1]]
block_mask = dict(type='BlockMaskGenerator', input_size=crop_size, block_size=32, mask_ratio=0.6)
train_pipeline = [
    dict(type='PerSampleSeed'),  # augmentation = f(seed, epoch, sample): exact resume
    # 8-bit 3-band files only: anything else (unreadable, grey, RGBA, 16-bit, N-band) stops
    # with the file name; on_error='skip' skips and counts such files instead.
    dict(type='LoadRSImageFromFile', channels=3, min_size=crop_size),
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
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    drop_last=True,
    dataset=dict(
        type='RSImageFolder',
        data_root='data/rs_sample',
        data_prefix='images',
        with_label=False,
        pipeline=train_pipeline))

model = dict(
    backbone=dict(depth=18),
    mim_head=dict(in_channels=512),
    global_neck=dict(in_channels=512, hid_channels=512, out_channels=128),
    global_head=dict(feat_dim=128, queue_len=1024),
    local_neck=dict(
        in_channels=512, hid_channels=512, bottleneck_channels=128, out_channels=1024),
    local_head=dict(out_channels=1024, warmup_teacher_temp_epochs=5),
    num_matches=6)

max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
# float32 on CPU; lr 1e-3 per 64 images (method.md §6.3) scaled to batch 16.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='CMIDOptimWrapperConstructor',
    optimizer=dict(
        type='Adan', lr=1e-3 * 16 / 64, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.02),
    paramwise_cfg=dict(flat_decay_mult=0.0, custom_keys={'mask_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=2, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=64, enable=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
randomness = dict(seed=0)
