# What every fine-tuning config of the study shares (plain values, no toolbox scope): the data
# folder finetune.py writes, crops, the pool's normalisation, BatchNorm in train mode, and one
# schedule for every initialisation: AdamW lr 1e-3, 10 % linear warm-up then cosine, 100
# iterations, no validation during training (the configs add one checkpoint at the end and
# per-iteration logs: keys their toolbox's default_runtime also sets).
data_root = 'work_dirs/finetune_data'  # prepare_finetune_data's out_dir; finetune.py sets it
crop_size = (256, 256)
max_iters = 100  # ~1 s/iter on 2 threads (finetune.py docstring)
warmup_iters = 10
# the study pool's statistics (projects/benchmarks/configs/_base_/study_common.py), RGB
pool_mean = [91.31, 103.24, 99.79]
pool_std = [59.48, 62.73, 59.95]
# BatchNorm in train mode, the same for every initialisation: frozen statistics would leave a
# random init unnormalised
norm_cfg = dict(type='BN', requires_grad=True)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
# no validation during training: finetune.py evaluates the final weights once on the test zone
val_dataloader = None
val_evaluator = None
val_cfg = None
randomness = dict(seed=0, deterministic=False)
