# CMID ResNet-50 fully fine-tuned on NWPU-RESISC45 with the UC Merced recipe of method.md §8:
# 224 px, 200 epochs, Adan lr 3.125e-3 wd 0.02, 5 warm-up epochs, Mixup 0.8 / CutMix 1.0,
# label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25.
#   python tools/train.py configs/classification/cmid_r50_ft_nwpu.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth
_base_ = ['./_base_/cmid_r50_ft_200e.py', './_base_/datasets/nwpu_ft_224.py']
model = dict(head=dict(num_classes=45))
