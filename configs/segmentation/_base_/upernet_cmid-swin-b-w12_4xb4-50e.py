# The UperNet + FCN auxiliary head recipe on a CMID swin-b-w12 backbone shared by every
# configs/segmentation/upernet_cmid-swin-b-w12_4xb4-50e_<dataset>-512x512.py: model, schedule,
# runtime and the exported backbone weights; the dataset configs add the data and num_classes.
_base_ = [
    './models/upernet_cmid-swin-b-w12.py',
    './schedules/adamw_poly_50e.py',
    './seg_runtime.py',
]
checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'
# mmseg's Swin reads the file itself and strips `backbone.` (no prefix option).
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
