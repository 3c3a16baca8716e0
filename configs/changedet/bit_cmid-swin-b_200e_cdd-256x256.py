# BIT on CDD with a CMID Swin-B (the paper's Swin-B change-detection row, mF1 97.11), same
# recipe as bit_cmid-r50_200e_cdd-256x256.py. The paper does not say which Swin level feeds
# BIT; here it is stage 3 (512 channels at 1/16), upsampled 4x before the head's projection so
# that the tokens and the decoder work at 1/4 as with the ResNet-50 (stride 8, upsampled 2x).
_base_ = [
    './bit_cmid-r50_200e_cdd-256x256.py', '../_base_/models/cmid_swin-b_mmseg-backbone.py'
]

checkpoint = 'work_dirs/cmid_swin-b_backbone.pth'
model = dict(
    backbone=dict(
        _base_.cmid_swin_b,
        _delete_=True,
        out_indices=(2, ),
        # mmseg's Swin strips `backbone.` itself; override model.backbone.init_cfg.checkpoint
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=512, pre_upsample=4))
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
