# UperNet + FCN auxiliary head (on stage 3) on a CMID ResNet-50: mmseg's upernet_r50 with the
# CMID traps set. Plain `ResNet` (conv1/bn1 stem, the architecture CMID pretrains): mmseg's
# default ResNetV1c has a deep stem (stem.0..8) that would stay randomly initialised without
# any error. `pretrained=None` because the mmseg base sets open-mmlab://resnet50_v1c and mmseg
# refuses `pretrained` together with `init_cfg` (the top configs set backbone.init_cfg).
# Inputs use mmseg's ImageNet mean / std, as the reference's downstream code (method.md §2).
_base_ = ['mmseg::_base_/models/upernet_r50.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)),  # pad training crops to 512x512
    pretrained=None,
    backbone=dict(type='ResNet', depth=50))
