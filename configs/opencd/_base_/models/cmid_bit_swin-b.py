# BIT on a CMID Swin-B: open-cd's _base_/models/bit_r18.py with the backbone replaced by
# mmseg's SwinTransformer cut after stage 3 (as BIT cuts the ResNet; no stage that runs without
# reaching the loss, which distributed training would reject), whose output (512 channels at
# 1/16) is upsampled 4x before the head's
# projection so that the tokens and the decoder work at 1/4 as with the ResNet (stride 8,
# upsampled 2x). The CMID paper does not say which Swin level feeds BIT.
# mmseg's Swin loads the file itself (strips `backbone.`, resizes bias tables, logs nothing);
# PretrainedLoadCheckHook counts what loaded. Stage 4, the stage-3 patch merging and norm3 of
# the file are reported as unused; norm2 (the stage-3 output norm) is new by design.
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = [
    '{{$OPENCD_ROOT:}}/configs/_base_/models/bit_r18.py',
    '../../../_base_/models/cmid_swin-b_mmseg-backbone.py',
]

checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        _base_.cmid_swin_b,
        _delete_=True,
        depths=[2, 2, 18],
        num_heads=[4, 8, 16],
        strides=(4, 2, 2),
        out_indices=(2, ),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=512, pre_upsample=4))
