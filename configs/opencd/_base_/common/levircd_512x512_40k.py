# open-cd's standard LEVIR-CD recipe (common/standard_512x512_40k_levircd.py: 512x512 random
# crops with rotation / flips / photometric distortion, batch 8, AdamW lr 1e-3 wd 0.05, 1000
# warm-up iterations then poly decay over 40k iterations, whole-image test at 1024 px,
# open-cd's visualiser), with the CMID run settings and the best checkpoint chosen by the F1
# of the `changed` class (undefined counted as 0) instead of mIoU.
# OPENCD_ROOT must point at an open-cd source checkout (its configs are not installed).
_base_ = [
    '{{$OPENCD_ROOT:}}/configs/common/standard_512x512_40k_levircd.py',
    '../cmid_runtime.py',
]
val_evaluator = dict(type='mmseg.CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='changed_F1', rule='greater'))
