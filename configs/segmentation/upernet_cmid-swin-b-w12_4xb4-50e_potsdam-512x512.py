# UperNet + FCN auxiliary head on a CMID Swin-B (window 12), ISPRS Potsdam, mmseg's standard
# protocol (6 classes, clutter counted): 512x512 crops, 50 epochs, 4 GPUs x 4 images, AdamW lr 6e-5
# wd 0.01, drop path 0.3 (method.md §8).
# Weights (CKPT = a CMID pretraining checkpoint from tools/train.py):
#   python tools/model_converters/export_cmid.py CKPT work_dirs/cmid_swin-b_backbone.pth
#   bash tools/dist_train.sh \
#       configs/segmentation/upernet_cmid-swin-b-w12_4xb4-50e_potsdam-512x512.py 4
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (the variable
# `checkpoint` is copied into the model when the config is read; overriding it does
# nothing).
_base_ = ['./_base_/upernet_cmid-swin-b-w12_4xb4-50e.py',
          './_base_/datasets/potsdam_6cls.py']
num_classes = 6
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
