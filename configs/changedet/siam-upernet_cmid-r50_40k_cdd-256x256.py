# CMID ResNet-50 in a siamese UperNet (+FCN auxiliary head) on CDD (256x256 px pairs):
# flips, batch 8, 40k iterations of SGD (lr 0.01, poly), whole-image test.
#   python tools/train.py configs/changedet/siam-upernet_cmid-r50_40k_cdd-256x256.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/CDD val_dataloader.dataset.data_root=/data/CDD \
#       test_dataloader.dataset.data_root=/data/CDD
_base_ = ['./_base_/cmid_r50_upernet_40k.py', './_base_/datasets/cdd.py']
