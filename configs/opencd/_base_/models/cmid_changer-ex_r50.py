# ChangerEx (Fang et al. 2022) on a CMID ResNet-50: open-cd's _base_/models/changer_r18.py
# (DIEncoderDecoder: the backbone sees both dates and exchanges features between them; the
# Changer head aligns them with flow-based FDAF and fuses), with the CMID changes:
# - type='IA_ResNet' (plain conv1/bn1 stem, as CMID's ResNet), not 'IA_ResNetV1c' (deep stem:
#   15 stem tensors would stay random), depth 50;
# - init_cfg Pretrained with prefix='backbone.' (the export keeps the student under
#   `backbone.`; without the prefix nothing loads); `pretrained` stays None;
# - the Changer head at ResNet-50 widths (channels 256, as open-cd's ResNeSt-50 ChangerEx);
# - ChangerEx's exchanges (open-cd's changer_ex_* configs): spatial after stage 2, channel
#   after stages 3 and 4; OHEM pixel sampling.
# The checkpoint path is copied into the model when the config is read: override
# model.backbone.init_cfg.checkpoint=PATH.
_base_ = ['{{$OPENCD_ROOT:}}/configs/_base_/models/changer_r18.py']

checkpoint = 'work_dirs/cmid_r50_backbone.pth'  # tools/model_converters/export_cmid.py output
model = dict(
    pretrained=None,
    backbone=dict(
        type='IA_ResNet',
        depth=50,
        interaction_cfg=(None, dict(type='SpatialExchange', p=1 / 2),
                         dict(type='ChannelExchange', p=1 / 2),
                         dict(type='ChannelExchange', p=1 / 2)),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(
        in_channels=[256, 512, 1024, 2048],  # per date; the head splits the pair
        channels=256,
        sampler=dict(type='mmseg.OHEMPixelSampler', thresh=0.7, min_kept=100000)))
