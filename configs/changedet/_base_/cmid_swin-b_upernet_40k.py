# CMID Swin-B in a siamese UperNet (+FCN auxiliary head), 40k iterations of AdamW (lr 6e-5,
# wd 0.01, 1500 warm-up): the recipe shared by siam-upernet_cmid-swin-b_40k_{cdd-256x256,levir-cd-512x512}.py.
_base_ = [
    './models/cmid_siam_upernet_swin-b.py',
    './schedules/adamw_poly_40k.py',
    './cd_runtime.py',
]
# CMID weights (tools/model_converters/export_cmid.py output, keys `backbone.*`, without
# relative_position_index buffers, so any window size loads). mmseg's Swin strips the
# `backbone.` prefix itself. Copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
