# CDD / SVCD (Lebedev et al. 2018): season-varying pairs, 256x256 px RGB JPEG; 10 000 train,
# 3 000 val, 3 000 test. The paper's change-detection set (docs/method.md §8.4).
# Layout data_root/{train,val,test}/{A,B,label}/*.jpg; the original release names the label
# folder OUT: then set *_dataloader.dataset.data_prefix.seg_map_path='train/OUT' (etc.).
# JPEG masks are thresholded at 128 into classes 0 unchanged / 1 changed.
_base_ = ['./cd_loaders.py']
dataset_type = 'CDD_Dataset'
data_root = 'data/CDD'

train_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='MultiImgRandomFlip', prob=0.5, direction='vertical'),
    dict(type='MultiImgPackSegInputs')
]
test_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgPackSegInputs')
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
