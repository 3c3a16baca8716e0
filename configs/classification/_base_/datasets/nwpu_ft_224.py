# NWPU-RESISC45: 45 classes x 700 images, 256x256 px, 0.2-30 m.
# Put the class folders under data/NWPU-RESISC45/images/<class>/*.jpg.
# Usual protocols train on 10 % or 20 % of each class:
#   python tools/dataset_converters/split_folder_dataset.py data/NWPU-RESISC45/images \
#       --out-dir data/NWPU-RESISC45/meta --train-ratio 0.2 --seed 0
_base_ = ['./scene_ft_224.py']
data_root = 'data/NWPU-RESISC45'
data_preprocessor = dict(num_classes=45)
train_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='images'))
val_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='images'))
test_dataloader = val_dataloader
