# The CMID paper's change-detection protocol (docs/method.md §8.4): BIT on CDD, 200 epochs, with a
# CMID ResNet-50 (paper: mF1 96.95). BIT's recipe: batch 8, SGD lr 0.01 momentum 0.9 wd 5e-4,
# linear decay, flips; 200 epochs of the 10 000 training pairs = 250 000 iterations.
#   python tools/train.py configs/changedet/bit_cmid-r50_200e_cdd-256x256.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/CDD val_dataloader.dataset.data_root=/data/CDD \
#       test_dataloader.dataset.data_root=/data/CDD
_base_ = [
    './_base_/models/cmid_bit_r50.py',
    './_base_/datasets/cdd.py',
    './_base_/schedules/sgd_linear_200ep_cdd.py',
    './_base_/cd_runtime.py',
]

# CMID weights (export_cmid.py output, keys `backbone.*`). Copied into the model when the
# config is read: override model.backbone.init_cfg.checkpoint=PATH.
checkpoint = 'work_dirs/cmid_r50_backbone.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')))
