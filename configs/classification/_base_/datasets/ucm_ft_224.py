# UC Merced Land Use: 21 classes x 100 images, 256x256 px, 0.3 m (USGS aerial).
# The official zip unpacks to UCMerced_LandUse/Images/<class>/<name>.tif. Paper split: 80/20
#   python tools/dataset_converters/split_folder_dataset.py data/UCMerced_LandUse/Images \
#       --out-dir data/UCMerced_LandUse/meta --train-ratio 0.8 --seed 0
_base_ = ['./scene_ft_224.py']
data_root = 'data/UCMerced_LandUse'
data_preprocessor = dict(num_classes=21)
train_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='Images'))
val_dataloader = dict(dataset=dict(data_root=data_root, data_prefix='Images'))
test_dataloader = val_dataloader
