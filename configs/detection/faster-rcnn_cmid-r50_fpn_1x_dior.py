# Faster R-CNN + FPN on a CMID ResNet-50, DIOR horizontal boxes (20 classes): mmdet's 1x
# recipe (12 epochs, 8 GPUs x 2 images, SGD lr 0.02 momentum 0.9 wd 1e-4, steps at epochs 8
# and 11), 800x800 images. The paper evaluates detection with Oriented R-CNN on DOTA in mmrotate
# (method.md §8); this is the horizontal-box mmdet analogue. RoIAlign (mmcv's RoIPool has no
# CPU kernel). mmdet's standard frozen stem + stage 1 and frozen BN statistics.
# Weights (CKPT = a CMID pretraining checkpoint from tools/train.py):
#   python tools/model_converters/export_cmid.py CKPT work_dirs/cmid_r50_backbone.pth
#   bash tools/dist_train.sh configs/detection/faster-rcnn_cmid-r50_fpn_1x_dior.py 8
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (the variable
# `checkpoint` is copied into the model when the config is read; overriding it does nothing).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/datasets/dior.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# cmid_mm.downstream.det registers DIORDataset; it imports cmid_mm (SafeRunner, the hook below)
custom_imports = dict(imports=['cmid_mm.downstream.det'], allow_failed_imports=False)
# mmengine's Runner plus cmid_mm's checkpoint guarantees (no code from checkpoints, CRC-checked
# loads, no non-finite saves; SECURITY.md), also under another toolbox's tools/train.py.
runner_type = 'SafeRunner'
# Stop before training if the backbone's Pretrained weights did not all load (compared by
# value with the file; see cmid_mm/engine/hooks/pretrained_check_hook.py).
custom_hooks = [dict(type='PretrainedLoadCheckHook')]
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(
        type='ResNet',  # plain ResNet (conv1/bn1 stem) as CMID pretrains, not ResNetV1c
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(type='RoIAlign', output_size=7,
                                               sampling_ratio=0)),
        bbox_head=dict(num_classes=20)))
