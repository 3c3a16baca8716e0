# ResNet-50 classifier with the paper's fine-tuning regularisation (method.md §8): label smoothing
# 0.1, Mixup (alpha 0.8) or CutMix (alpha 1.0) on each batch (one of the two at random).
# Plain `ResNet` (conv1/bn1 stem), the architecture CMID pretrains; not ResNetV1c.
_base_ = ['mmpretrain::_base_/models/resnet50_label_smooth.py']
model = dict(
    backbone=dict(type='ResNet', depth=50),
    head=dict(loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
