# CMID ResNet-50 in a siamese UperNet (+FCN auxiliary head), 40k iterations of SGD (lr 0.01,
# poly): the recipe shared by siam-upernet_cmid-r50_40k_{cdd-256x256,levir-cd-512x512}.py.
_base_ = [
    './models/cmid_siam_upernet_r50.py',
    './schedules/sgd_poly_40k.py',
    './cd_runtime.py',
]
# CMID weights: the output of tools/model_converters/export_cmid.py (or a CMID training
# checkpoint); the student backbone sits under `backbone.`. The value is copied into the
# model when the config is read: override model.backbone.init_cfg.checkpoint=PATH.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
