# The UperNet + FCN auxiliary head recipe on a CMID vit-b16 backbone shared by every
# configs/segmentation/upernet_cmid-vit-b16_4xb4-50e_<dataset>-512x512.py: model, schedule,
# runtime and the exported backbone weights; the dataset configs add the data and num_classes.
_base_ = [
    './models/upernet_cmid-vit-b16.py',
    './schedules/adamw_poly_50e.py',
    './seg_runtime.py',
]
checkpoint = 'work_dirs/cmid_vit-b16_backbone_mmseg-vit.pth'
# mmseg's ViT loads the whole file (no prefix): the --mmseg-vit export.
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
