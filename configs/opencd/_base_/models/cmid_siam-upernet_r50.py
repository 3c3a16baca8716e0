# Siamese UperNet (+FCN auxiliary head) on a CMID ResNet-50: open-cd's
# _base_/models/siam_upernet_r50.py (shared backbone on both dates, features concatenated per
# level) with the CMID changes: pretrained=None (the stock file sets
# 'open-mmlab://resnet50_v1c'), type='mmseg.ResNet' (plain stem, not the stock
# 'mmseg.ResNetV1c'), init_cfg Pretrained with prefix='backbone.'.
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = ['{{$OPENCD_ROOT:}}/configs/_base_/models/siam_upernet_r50.py']

checkpoint = 'work_dirs/cmid_r50_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        type='mmseg.ResNet',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
