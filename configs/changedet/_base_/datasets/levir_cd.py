# LEVIR-CD (Chen & Shi 2020): 637 pairs of 1024x1024 px RGB at 0.5 m, building change.
# Layout data_root/{train,val,test}/{A,B,label}/*.png (label 0 / 255 -> classes 0 / 1).
# The dataset fields are copied when the config is read: override the dataloader keys,
# e.g. train_dataloader.dataset.data_root=/data/LEVIR-CD (and val_/test_dataloader), not
# `data_root`.
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
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path_from='train/A', img_path_to='train/B', seg_map_path='train/label'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path_from='val/A', img_path_to='val/B', seg_map_path='val/label'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path_from='test/A', img_path_to='test/B', seg_map_path='test/label'),
        pipeline=test_pipeline))

# mmseg's IoUMetric (mFscore / mIoU / ... averaged over the two classes, per-class table) plus
# the scores of the `changed` class (changed_F1 / changed_IoU / changed_Precision /
# changed_Recall) with an undefined ratio counted as 0: a model that predicts no change scores
# changed_F1 0 (its mFscore, the nan-mean, is the `unchanged` F1 alone: 97.4 at 5 % change).
val_evaluator = dict(type='CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
test_evaluator = val_evaluator
