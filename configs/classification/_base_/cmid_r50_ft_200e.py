# The CMID ResNet-50 full fine-tuning recipe of method.md §8 shared by cmid_r50_ft_<dataset>.py:
# model, schedule, runtime and the CMID weights; the dataset configs add data and num_classes.
_base_ = [
    './models/cmid_r50_ft.py',
    './schedules/adan_ft_200e.py',
    './scene_runtime.py',
]

# CMID weights: a CMID training checkpoint or the output of
# tools/model_converters/export_cmid.py (student backbone under `backbone.`). The value is
# copied into the model when the config is read, so override the model field,
# model.backbone.init_cfg.checkpoint=PATH, not this variable.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
