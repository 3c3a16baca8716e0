# CMID with a ResNet-50 student/teacher (method.md §3-§5). Last-stage map: 2048 x 7 x 7 at 224 px.
model = dict(
    type='CMID',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        # MillionAID statistics of the reference (0-1 scale x 255), RGB order.
        mean=[86.18, 91.93, 85.37],
        std=[34.65, 34.48, 35.88],
        to_rgb=True),
    backbone=dict(
        type='CMIDResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='BN'),
        mask_mode='add'),
    mim_head=dict(type='CMIDMIMHead', in_channels=2048, encoder_stride=32, in_chans=3),
    global_neck=dict(
        type='MoCoV2Neck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=256,
        with_avg_pool=True),
    global_head=dict(
        type='QueueContrastiveHead', feat_dim=256, queue_len=65536, temperature=0.2),
    local_neck=dict(
        type='CMIDLocalNeck',
        in_channels=2048,
        hid_channels=2048,
        bottleneck_channels=256,
        out_channels=2048,
        num_layers=3,
        with_bn=True),  # BN in the local neck for ResNet, not for Swin (method.md §4)
    local_head=dict(
        type='DINOLocalHead',
        out_channels=2048,
        student_temp=0.1,
        center_momentum=0.9,
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=50),
    base_momentum=0.004,  # teacher decay 0.996 ...
    end_momentum=0.0,  # ... cosine to 1.0
    num_matches=20,
    loss_weights=dict(loss_rec=1.0, loss_global=1.0, loss_local=1.0))
# Distributed on GPUs every BN (student and EMA teacher, backbone and local head) becomes torch
# SyncBN, as in the reference. torch has no CPU SyncBN: tools/train.py then drops this with a
# warning and each rank normalises with its own batch (docs/scale.md).
sync_bn = 'torch'
