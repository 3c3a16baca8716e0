# CMID ResNet-50 in a siamese UperNet (+FCN auxiliary head) on LEVIR-CD, open-cd's recipe:
# 512x512 random crops, batch 8, 40k iterations of SGD (lr 0.01, poly), whole-image test.
#   python tools/train.py configs/changedet/cmid_r50_upernet_levir-cd.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/LEVIR-CD \
#       val_dataloader.dataset.data_root=/data/LEVIR-CD \
#       test_dataloader.dataset.data_root=/data/LEVIR-CD
_base_ = [
    './_base_/models/cmid_siam_upernet_r50.py',
    './_base_/datasets/levir_cd.py',
    './_base_/schedules/sgd_poly_40k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['cmid_mm'], allow_failed_imports=False)
# SafeRunner (cmid_mm) also when another toolbox's train.py (mmseg's, open-cd's) builds the runner
runner_type = 'SafeRunner'
# Stop before training if the backbone's Pretrained weights did not all load (compared by
# value with the file; see cmid_mm/engine/hooks/pretrained_check_hook.py).
custom_hooks = [dict(type='PretrainedLoadCheckHook')]

# CMID weights: the output of tools/model_converters/export_cmid.py (or a CMID training
# checkpoint); the student backbone sits under `backbone.`. The value is copied into the
# model when the config is read: override model.backbone.init_cfg.checkpoint=PATH.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
