# LEVIR-CD (Chen & Shi 2020): 637 pairs of 1024x1024 px RGB at 0.5 m, building change.
# Layout data_root/{train,val,test}/{A,B,label}/*.png (label 0 / 255 -> classes 0 / 1).
# The dataset fields are copied when the config is read: override the dataloader keys,
# e.g. train_dataloader.dataset.data_root=/data/LEVIR-CD (and val_/test_dataloader), not
# `data_root`.
_base_ = ['./cd_loaders.py']
dataset_type = 'LEVIR_CD_Dataset'
data_root = 'data/LEVIR-CD'

crop_size = (512, 512)
train_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='MultiImgRandomFlip', prob=0.5),
    dict(type='MultiImgPackSegInputs')
]
test_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgResize', scale=(1024, 1024), keep_ratio=True),
    # annotations after the resize: metrics compare with the label at its own size
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgPackSegInputs')
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
