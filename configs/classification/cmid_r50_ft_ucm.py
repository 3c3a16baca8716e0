# CMID ResNet-50 fully fine-tuned on UC Merced, 80/20 split, with the recipe of method.md §8:
# 224 px, 200 epochs, Adan lr 3.125e-3 wd 0.02, 5 warm-up epochs, Mixup 0.8 / CutMix 1.0,
# label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25.
# Paper: OA 99.22 %.
#   python tools/train.py configs/classification/cmid_r50_ft_ucm.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth
_base_ = [
    './_base_/models/cmid_r50_ft.py',
    './_base_/datasets/ucm_ft_224.py',
    './_base_/schedules/adan_ft_200e.py',
    './_base_/scene_runtime.py',
]

# CMID weights: a CMID training checkpoint or the output of
# tools/model_converters/export_cmid.py (student backbone under `backbone.`). The value is
# copied into the model when the config is read, so override the model field,
# model.backbone.init_cfg.checkpoint=PATH, not this variable.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    head=dict(num_classes=21))
