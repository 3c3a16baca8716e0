# BIT (Chen et al. 2021) on a CMID ResNet-50: open-cd's _base_/models/bit_r18.py
# (SiamEncoderDecoder, shared backbone up to stage 3 at stride 8, BIT head) with the CMID
# changes:
# - pretrained=None (the stock file sets 'open-mmlab://resnet18_v1c'; with a backbone init_cfg
#   mmseg asserts "init_cfg and pretrained cannot be setting at the same time");
# - type='mmseg.ResNet' (plain stem; a bare 'ResNet' is not in open-cd's registry, and the
#   stock 'mmseg.ResNetV1c' has a deep stem that would stay random), depth 50;
# - init_cfg Pretrained with prefix='backbone.'. Stage 4 of the file is not used by this
#   3-stage backbone and is reported as unused (not an error);
# - the BIT head at ResNet-50 width: stage 3 has 1024 channels.
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = ['{{$OPENCD_ROOT:}}/configs/_base_/models/bit_r18.py']

checkpoint = 'work_dirs/cmid_r50_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        type='mmseg.ResNet',
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=1024))
