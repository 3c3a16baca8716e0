# UperNet + FCN auxiliary head on a CMID ViT-B/16, ISPRS Vaihingen with clutter ignored (the
# paper's protocol, 5 classes): 512x512 crops, 50 epochs, 4 GPUs x 4 images, AdamW lr 6e-5 wd 0.01
# (the Swin-B recipe; the paper gives none for ViT-B), drop path 0.1 (method.md §8).
# Weights (CKPT = a CMID pretraining checkpoint from tools/train.py):
#   python tools/model_converters/export_cmid.py CKPT work_dirs/cmid_vit-b16_backbone.pth \
#       --mmseg-vit
#   bash tools/dist_train.sh \
#       configs/segmentation/upernet_cmid-vit-b16_4xb4-50e_vaihingen-noclutter-512x512.py 4
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (the variable
# `checkpoint` is copied into the model when the config is read; overriding it does
# nothing).
_base_ = ['./_base_/upernet_cmid-vit-b16_4xb4-50e.py',
          './_base_/datasets/vaihingen_noclutter.py']
num_classes = 5
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
