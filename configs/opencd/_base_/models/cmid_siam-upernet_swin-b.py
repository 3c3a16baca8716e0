# Siamese UperNet (+FCN auxiliary head) on a CMID Swin-B: open-cd's
# _base_/models/siam_upernet_r50.py with the backbone replaced by mmseg's SwinTransformer at
# Swin-B size and the heads at Swin-B widths (x2: the dates are concatenated per level).
# mmseg's Swin loads the file itself (strips `backbone.`, resizes bias tables, logs nothing);
# PretrainedLoadCheckHook counts what loaded. New by design: relative_position_index buffers
# and the output norms norm0-2 (CMID trains norm3 only).
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = [
    '{{$OPENCD_ROOT:}}/configs/_base_/models/siam_upernet_r50.py',
    '../../../_base_/models/cmid_swin-b_mmseg-backbone.py',
]

checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        _base_.cmid_swin_b,
        _delete_=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[v * 2 for v in [128, 256, 512, 1024]]),
    auxiliary_head=dict(in_channels=512 * 2))
