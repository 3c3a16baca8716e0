# The UperNet + FCN auxiliary head recipe on a CMID r50 backbone shared by every
# configs/segmentation/upernet_cmid-r50_4xb4-50e_<dataset>-512x512.py: model, schedule,
# runtime and the exported backbone weights; the dataset configs add the data and num_classes.
_base_ = [
    './models/upernet_cmid-r50.py',
    './schedules/sgd_poly_50e.py',
    './seg_runtime.py',
]
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
