# UperNet + FCN auxiliary head on a CMID ResNet-50, ISPRS Vaihingen, mmseg's standard protocol (6
# classes, clutter counted): 512x512 crops, 50 epochs, 4 GPUs x 4 images, SGD lr 0.01 momentum 0.9
# wd 1e-4 (method.md §8).
# Weights (CKPT = a CMID pretraining checkpoint from tools/train.py):
#   python tools/model_converters/export_cmid.py CKPT work_dirs/cmid_r50_backbone.pth
#   bash tools/dist_train.sh \
#       configs/segmentation/upernet_cmid-r50_4xb4-50e_vaihingen-512x512.py 4
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (the variable
# `checkpoint` is copied into the model when the config is read; overriding it does
# nothing).
_base_ = ['./_base_/upernet_cmid-r50_4xb4-50e.py',
          './_base_/datasets/vaihingen_6cls.py']
num_classes = 6
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
