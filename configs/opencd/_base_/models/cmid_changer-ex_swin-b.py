# ChangerEx on a CMID Swin-B: open-cd's _base_/models/changer_r18.py with the backbone
# replaced by mmseg.IA_SwinTransformer (cmid_mm: mmseg's Swin taking both dates, with open-cd's
# exchange layers between stages; open-cd has IA backbones for ResNet / ResNeSt / MiT only).
# mmseg's Swin loads init_cfg.checkpoint itself: it strips the export's `backbone.` prefix
# (init_cfg.prefix is not read), resizes the relative-position bias tables to window_size and
# logs nothing: PretrainedLoadCheckHook (cmid_runtime.py) counts what loaded. New by design:
# the relative_position_index buffers and the output norms norm0-2 (CMID trains norm3 only).
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
# Inherits the ResNet-50 ChangerEx (exchanges, head width, OHEM) and replaces the backbone.
_base_ = ['./cmid_changer-ex_r50.py', '../../../_base_/models/cmid_swin-b_mmseg-backbone.py']

checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    backbone=dict(
        _base_.cmid_swin_b,
        _delete_=True,
        type='mmseg.IA_SwinTransformer',
        interaction_cfg=_base_.model.backbone.interaction_cfg,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))  # per date; the head splits the pair
