# open-cd / mmseg 40k-iteration schedule: SGD lr 0.01, momentum 0.9, wd 5e-4, poly decay to
# 1e-4, validation and a checkpoint every 4000 iterations; also keeps the checkpoint with the
# best changed_F1 (F1 of the `changed` class, CDIoUMetric).
_base_ = ['mmseg::_base_/schedules/schedule_40k.py']
default_hooks = dict(checkpoint=dict(save_best='changed_F1', rule='greater'))
