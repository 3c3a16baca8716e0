# The siamese encoder-decoder on a CMID ResNet-50 shared by the change-detection models
# (cmid_siam_upernet_r50.py adds UperNet + FCN heads, cmid_bit_r50.py cuts the backbone after
# stage 3 and adds BIT): plain `ResNet` (CMID / torchvision stem conv1+bn1, not ResNetV1c's
# deep stem, which would leave the stem silently random) and `pretrained=None` (weights come
# via backbone.init_cfg in the top config). The shared backbone runs on both dates; the neck
# concatenates them per level (date 1 first).
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN when not distributed (mmengine)
data_preprocessor = dict(
    type='DualInputSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53] * 2,  # ImageNet statistics per date, RGB, 0-255
    std=[58.395, 57.12, 57.375] * 2,
    bgr_to_rgb=True,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255,
    test_cfg=dict(size_divisor=32))
model = dict(
    type='SiamEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone_inchannels=3,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    neck=dict(type='FeatureFusionNeck', policy='concat'),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
