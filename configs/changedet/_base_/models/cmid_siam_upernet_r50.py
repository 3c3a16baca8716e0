# Siamese UperNet on a CMID ResNet-50 (open-cd's siam_upernet_r50 with the CMID traps set):
# plain `ResNet` (CMID / torchvision stem conv1+bn1, not ResNetV1c's deep stem, which would
# leave the stem silently random) and `pretrained=None` (weights come via backbone.init_cfg
# in the top config). The shared backbone runs on both dates; the neck concatenates them
# per level, so every head sees 2x the backbone channels (date 1 first).
_base_ = ['./cmid_siam_r50.py']
norm_cfg = {{_base_.norm_cfg}}
model = dict(
    decode_head=dict(
        type='UPerHead',
        in_channels=[v * 2 for v in [256, 512, 1024, 2048]],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024 * 2,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
