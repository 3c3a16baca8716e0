# CMID Swin-B in a siamese UperNet (+FCN auxiliary head) on LEVIR-CD: 512x512 random crops,
# batch 8, 40k iterations of AdamW (lr 6e-5, wd 0.01, 1500 warm-up), whole-image test.
#   python tools/train.py configs/changedet/siam-upernet_cmid-swin-b_40k_levir-cd-512x512.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_swin-b_backbone.pth \
#       train_dataloader.dataset.data_root=/data/LEVIR-CD \
#       val_dataloader.dataset.data_root=/data/LEVIR-CD \
#       test_dataloader.dataset.data_root=/data/LEVIR-CD
_base_ = ['./_base_/cmid_swin-b_upernet_40k.py', './_base_/datasets/levir_cd.py']
