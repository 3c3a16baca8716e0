# CDD / SVCD (Lebedev et al. 2018): season-varying pairs, 256x256 px RGB JPEG; 10 000 train,
# 3 000 val, 3 000 test. The paper's change-detection set (docs/method.md §8.4).
# Layout data_root/{train,val,test}/{A,B,label}/*.jpg; the original release names the label
# folder OUT: then set *_dataloader.dataset.data_prefix.seg_map_path='train/OUT' (etc.).
# JPEG masks are thresholded at 128 into classes 0 unchanged / 1 changed.
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
