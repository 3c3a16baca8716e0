# BIT's schedule, as the CMID paper ran it on CDD (200 epochs), counted in iterations:
# 10 000 training pairs / batch 8 = 1250 iterations per epoch -> 250 000 iterations.
# SGD lr 0.01, momentum 0.9, wd 5e-4, linear decay to 0; validation and a checkpoint every
# 10 epochs (12 500 iterations); keeps the checkpoint with the best changed_F1 (F1 of the
# `changed` class, CDIoUMetric). With another total batch size, scale max_iters (and `end`)
# to keep 200 epochs.
_base_ = ['mmseg::_base_/schedules/schedule_40k.py']
max_iters = 250000
interval = 12500
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=interval, save_best='changed_F1', rule='greater'))
