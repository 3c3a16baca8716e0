# BIT (Chen et al. 2021) on a CMID ResNet-50: the change-detection model of the CMID paper.
# As in BIT / open-cd's bit_r18, the backbone stops after stage 3 with stage 3 at stride 1,
# i.e. one map of 1024 channels at 1/8 of the input; the head upsamples it 2x, projects it
# to 32 channels, tokenizes, runs the transformer and predicts at full resolution.
# Plain `ResNet` (CMID stem), pretrained=None; the unused stage-4 weights of the CMID file
# are reported as unexpected keys when loading, which is expected.
_base_ = ['./cmid_siam_r50.py']
norm_cfg = {{_base_.norm_cfg}}
model = dict(
    backbone=dict(num_stages=3, out_indices=(2, ), dilations=(1, 1, 1), strides=(1, 2, 1)),
    neck=dict(out_indices=(0, )),
    decode_head=dict(
        type='BITHead',
        in_channels=1024,  # one date; the head splits the concatenated pair
        channels=32,
        embed_dims=64,
        enc_depth=1,
        enc_with_pos=True,
        dec_depth=8,
        num_heads=8,
        drop_rate=0.,
        use_tokenizer=True,
        token_len=4,
        pre_upsample=2,
        upsample_size=4,
        num_classes=2,
        norm_cfg=dict(type='LN', requires_grad=True),
        classifier_norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
