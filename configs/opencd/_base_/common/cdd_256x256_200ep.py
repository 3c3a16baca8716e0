# The CMID paper's change-detection protocol: BIT on CDD for 200 epochs with BIT's recipe
# (cdd_256x256_40k.py otherwise), counted in iterations: 10 000 training pairs / batch 8 = 1250
# per epoch -> 250 000; SGD lr 0.01 (schedule_40k's), linear decay to 0; validation and a
# checkpoint every 10 epochs.
_base_ = ['./cdd_256x256_40k.py']
max_iters = 250000
interval = 12500
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
default_hooks = dict(checkpoint=dict(interval=interval))
