# CMID ResNet-50 in a siamese UperNet (+FCN auxiliary head) on LEVIR-CD, open-cd's recipe:
# 512x512 random crops, batch 8, 40k iterations of SGD (lr 0.01, poly), whole-image test.
#   python tools/train.py configs/changedet/siam-upernet_cmid-r50_40k_levir-cd-512x512.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/LEVIR-CD \
#       val_dataloader.dataset.data_root=/data/LEVIR-CD \
#       test_dataloader.dataset.data_root=/data/LEVIR-CD
_base_ = ['./_base_/cmid_r50_upernet_40k.py', './_base_/datasets/levir_cd.py']
