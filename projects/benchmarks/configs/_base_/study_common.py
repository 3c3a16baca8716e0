# Shared settings of the learning-signal study (docs/learning_signal.md): one pretraining pool,
# one input size, one batch size, one optimizer family, an iteration budget with checkpoints
# at fixed fractions of it. projects/benchmarks/learning_signal_study.py sets the budget with
# --cfg-options (train_cfg.max_iters, the scheduler ends, the checkpoint interval); the values
# here are a 90-iteration default so that `python tools/train.py projects/benchmarks/configs/<m>.py` runs.
_base_ = ['../../../../configs/_base_/default_runtime.py']

crop_size = 96  # ResNet-18 last stage: 3x3 cells
batch_size = 32
queue_len = 128  # MoCo-v2 and CMID negatives (the pool holds ~200 images)
max_iters = 90
warmup_iters = 9  # 10 % of the budget
data_root = 'data/rs_study'
# Per-channel mean / std (0-255, RGB) of the pretraining pool (data/rs_study/manifest.json,
# pretrain.mean_rgb / std_rgb); also used to normalise the probe patches.
pool_mean = [91.31, 103.24, 99.79]
pool_std = [59.48, 62.73, 59.95]
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=pool_mean, std=pool_std, to_rgb=True)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    # One endless shuffled stream: mmengine's iteration loop sleeps 2 s at every end of a
    # finite sampler's pass (6 batches of this pool), ~20 % of the budget with DefaultSampler.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    drop_last=True,
    dataset=dict(
        type='RSImageFolder',
        data_root=data_root,
        data_prefix='pretrain/images',
        with_label=False,
        pipeline=[]))  # set by each method

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# Adan for every method (the CMID recipe's optimizer; lr 1e-3 per 64 images, method.md §6.3), no
# weight decay on 1-D parameters, float32 on CPU.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adan', lr=1e-3 * batch_size / 64, betas=(0.98, 0.92, 0.99), eps=1e-8,
        weight_decay=0.02),
    paramwise_cfg=dict(flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
auto_scale_lr = dict(base_batch_size=64, enable=False)

# Checkpoints at 1/3, 2/3 and 3/3 of the budget (the runner keeps interval = max_iters / 3).
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 3,
                    max_keep_ckpts=-1, save_last=True))
log_processor = dict(by_epoch=False, window_size=1)  # raw per-iteration times in the log
# No per-epoch machinery in an iteration loop (ExactResumeHook needs an epoch loop).
custom_hooks = []
randomness = dict(seed=0, deterministic=False)
