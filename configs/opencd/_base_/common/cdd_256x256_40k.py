# CDD (open-cd's name: SVCD) with open-cd's own files: _base_/datasets/svcd.py (256x256 JPEG
# pairs, folders {train,val,test}/{A,B,OUT} as released, labels thresholded at 128, flips),
# _base_/default_runtime.py (scope opencd, CDLocalVisualizer) and _base_/schedules/
# schedule_40k.py (SGD lr 0.01 poly, 40k iterations, validation every 4000), with the CMID
# run settings and the best checkpoint chosen by the F1 of the `changed` class.
# OPENCD_ROOT must point at an open-cd source checkout (its configs are not installed).
_base_ = [
    '{{$OPENCD_ROOT:}}/configs/_base_/datasets/svcd.py',
    '{{$OPENCD_ROOT:}}/configs/_base_/default_runtime.py',
    '{{$OPENCD_ROOT:}}/configs/_base_/schedules/schedule_40k.py',
    '../cmid_runtime.py',
]
val_evaluator = dict(type='mmseg.CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='changed_F1', rule='greater'))
