# CMID Swin-B pretraining, the reference recipe: MillionAID folder, 224 px, 64 images per GPU,
# Adan (lr 4e-3 at 256 images, scale with --auto-scale-lr), 10-epoch warm-up + cosine,
# AMP, 200 epochs.
#   bash tools/dist_train.sh configs/cmid_swin_pretrain.py 4 --auto-scale-lr \
#       --cfg-options train_dataloader.dataset.data_root=/data/MillionAID/train
_base_ = [
    '_base_/models/cmid_swin_base.py',
    '_base_/datasets/millionaid_cmid.py',
    '_base_/schedules/adan_coslr-warmup10e_200e.py',
    '_base_/default_runtime.py',
]
