# Siamese UperNet on a CMID Swin-B (mmseg's upernet_swin at Swin-B size, siamese).
# mmseg's SwinTransformer loads init_cfg.checkpoint itself: it strips the `backbone.` prefix
# of an exported CMID file (init_cfg.prefix is not read), resizes relative-position bias
# tables to window_size, and loads non-strictly WITHOUT logging missing keys. CMID pretrains
# with out_indices=(3,), so norm0..norm2 (the extra output norms of stages 0-2) start fresh.
_base_ = ['./cmid_siam_upernet_r50.py', '../../../_base_/models/cmid_swin-b_mmseg-backbone.py']
model = dict(
    backbone=dict(_base_.cmid_swin_b, _delete_=True),
    decode_head=dict(in_channels=[v * 2 for v in [128, 256, 512, 1024]]),
    auxiliary_head=dict(in_channels=512 * 2))
