# open-cd's LEVIR-CD recipe for BIT (common/standard_256x256_40k_levircd.py: 256x256 random
# crops, otherwise as the 512 px recipe), with the CMID run settings and the best checkpoint
# chosen by the F1 of the `changed` class (undefined counted as 0).
# OPENCD_ROOT must point at an open-cd source checkout (its configs are not installed).
_base_ = [
    '{{$OPENCD_ROOT:}}/configs/common/standard_256x256_40k_levircd.py',
    '../cmid_runtime.py',
]
val_evaluator = dict(type='mmseg.CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='changed_F1', rule='greater'))
