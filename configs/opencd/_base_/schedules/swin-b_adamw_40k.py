# mmseg's Swin fine-tuning recipe for the Swin-B configs: AdamW lr 6e-5, wd 0.01 (none on
# relative-position tables and norms), 1500 warm-up iterations, then linear decay to 0 at 40k.
# Variables, because open-cd's recipe (in _base_/common) already sets optim_wrapper and
# param_scheduler: a config lists this file in `_base_` and assigns
#   optim_wrapper = dict(_base_.swin_b_optim_wrapper, _delete_=True)
#   param_scheduler = _base_.swin_b_param_scheduler
swin_b_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
swin_b_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
