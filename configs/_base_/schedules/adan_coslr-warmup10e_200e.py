# Reference optimisation recipe (method.md §6.3): Adan, lr 1e-3 per 64 images (4e-3 at batch 256),
# no weight decay on biases / 1-D parameters / the mask token, 10-epoch linear warm-up from
# 0.01x, then cosine to 1e-6 per iteration, 200 epochs, AMP, no gradient clipping.
optim_wrapper = dict(
    type='AmpOptimWrapper',  # tools/train.py falls back to float32 on a CPU-only machine
    loss_scale='dynamic',
    constructor='CMIDOptimWrapperConstructor',  # the EMA teacher is not optimised
    optimizer=dict(
        type='Adan', lr=4e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.02),
    paramwise_cfg=dict(
        flat_decay_mult=0.0,  # every 1-D parameter: biases, norms
        custom_keys={'mask_token': dict(decay_mult=0.0)}))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)

# lr above is for 256 images per step (4 GPUs x 64); `--auto-scale-lr` rescales it linearly.
auto_scale_lr = dict(base_batch_size=256, enable=False)
