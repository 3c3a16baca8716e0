# AID (Aerial Image Dataset): 30 classes, 10000 images of 600x600 px, 0.5-8 m.
# Put the class folders under data/AID/images/<Class>/*.jpg (e.g. `mv AID data/AID/images`).
# Usual protocols train on 20 % or 50 % of each class:
#   python tools/dataset_converters/split_folder_dataset.py data/AID/images \
#       --out-dir data/AID/meta --train-ratio 0.5 --seed 0
_base_ = ['./scene_ft_224.py']
data_root = 'data/AID'
data_preprocessor = dict(num_classes=30)
train_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='images'))
val_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='images'))
test_dataloader = val_dataloader
