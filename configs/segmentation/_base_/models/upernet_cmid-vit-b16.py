# UperNet + FCN auxiliary head on a CMID ViT-B/16 through mmseg's multi-level neck (mmseg's
# upernet_vit-b16_ln_mln: features of layers 3, 6, 9, 12 resampled to strides 4, 8, 16, 32).
# mmseg's VisionTransformer ignores init_cfg.prefix and names attention differently: it needs
# the `_mmseg-vit.pth` file of `tools/model_converters/export_cmid.py --mmseg-vit` (no prefix,
# attn.attn.in_proj_* / out_proj names), `patch_bias=True` (mmpretrain's patch embedding has a
# bias) and `final_norm=True` (the pretrained final LayerNorm `ln1`). The 14x14 position
# embedding of 224 px pretraining is resized bicubically to 32x32 for 512 px.
# Inputs use mmseg's ImageNet mean / std, as the reference's downstream code (method.md §2).
_base_ = ['mmseg::_base_/models/upernet_vit-b16_ln_mln.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    pretrained=None,  # the mmseg base points at a timm ViT file
    backbone=dict(patch_bias=True, final_norm=True, drop_path_rate=0.1))
