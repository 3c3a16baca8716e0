default_scope = 'mmpretrain'
custom_imports = dict(imports=['cmid_mm'], allow_failed_imports=False)
# mmengine's Runner plus cmid_mm's checkpoint guarantees (no code from checkpoints, CRC-checked
# loads, no non-finite saves; SECURITY.md), also under another toolbox's tools/train.py.
runner_type = 'SafeRunner'

default_hooks = dict(
    runtimeinfo=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# DINO teacher-temperature warm-up of the local loss (per epoch, as the reference).
# Exact resume: RNG streams as functions of (seed, epoch, iteration, sample); the train
# pipeline starts with dict(type='PerSampleSeed') (docs/resume.md).
custom_hooks = [
    dict(type='TeacherTempWarmupHook', by_epoch=True),
    dict(type='ExactResumeHook'),
    dict(type='SkippedImagesHook'),  # per-epoch count of files skipped by the loader
    # before the first iteration: an epoch with no batch, or a last batch the queue cannot take
    dict(type='TrainBatchCheckHook'),
    # SIGTERM / SIGUSR1: checkpoint after the current iteration and exit 75; SIGUSR1 in a
    # Slurm job also requeues it (docs/resume.md, preemption)
    dict(type='PreemptionHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo when there is no GPU
)

log_processor = dict(window_size=10)
vis_backends = [dict(type='LocalVisBackend')]
# TensorBoard: vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
