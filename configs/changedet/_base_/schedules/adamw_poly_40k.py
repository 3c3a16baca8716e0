# mmseg's Swin recipe on 40k iterations: AdamW lr 6e-5, betas (0.9, 0.999), wd 0.01 (none on
# relative-position tables and norms), linear warm-up over 1500 iterations, then linear decay
# to 0. Validation / checkpoints every 4000 iterations; keeps the checkpoint with the best
# changed_F1 (F1 of the `changed` class, CDIoUMetric).
_base_ = ['mmseg::_base_/schedules/schedule_40k.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(save_best='changed_F1', rule='greater'))
