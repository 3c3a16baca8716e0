# CMID with a ViT-B/16 student/teacher. The paper claims ViT; the reference ships none.
# Last-stage map = patch tokens on the 16-px grid: 768 x 14 x 14 at 224 px.
model = dict(
    type='CMID',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        # MillionAID statistics of the reference (0-1 scale x 255), RGB order.
        mean=[86.18, 91.93, 85.37],
        std=[34.65, 34.48, 35.88],
        to_rgb=True),
    backbone=dict(
        type='CMIDVisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='featmap',
        drop_path_rate=0.0,
        mask_mode='add',
        mask_stride=4),  # = token_stride of BlockMaskGenerator in the train pipeline
    mim_head=dict(type='CMIDMIMHead', in_channels=768, encoder_stride=16, in_chans=3),
    global_neck=dict(
        type='MoCoV2Neck',
        in_channels=768,
        hid_channels=2048,
        out_channels=256,
        with_avg_pool=True),
    global_head=dict(
        type='QueueContrastiveHead', feat_dim=256, queue_len=65536, temperature=0.2),
    local_neck=dict(
        type='CMIDLocalNeck',
        in_channels=768,
        hid_channels=2048,
        bottleneck_channels=256,
        out_channels=2048,
        num_layers=3,
        with_bn=False),
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
    # 14x14 = 196 cells: keep the paper's share of matched cells (20 of 49) -> 80.
    num_matches=80,
    loss_weights=dict(loss_rec=1.0, loss_global=1.0, loss_local=1.0))
