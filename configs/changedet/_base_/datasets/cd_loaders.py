# The dataloaders and metric shared by the change-detection datasets (cdd.py, levir_cd.py):
# data_root/{train,val,test}/{A,B,label}, batch 8, an infinite sampler for iteration-based
# training. Each dataset config adds the dataset type, data_root and pipelines.
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_prefix=dict(
        img_path_from='train/A', img_path_to='train/B', seg_map_path='train/label')))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_prefix=dict(
        img_path_from='val/A', img_path_to='val/B', seg_map_path='val/label')))
test_dataloader = dict(val_dataloader, dataset=dict(data_prefix=dict(
    img_path_from='test/A', img_path_to='test/B', seg_map_path='test/label')))

# mmseg's IoUMetric (mFscore / mIoU / ... averaged over the two classes, per-class table) plus
# the scores of the `changed` class (changed_F1 / changed_IoU / changed_Precision /
# changed_Recall) with an undefined ratio counted as 0: a model that predicts no change scores
# changed_F1 0 (its mFscore, the nan-mean, is the `unchanged` F1 alone: 97.4 at 5 % change).
val_evaluator = dict(type='CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
test_evaluator = val_evaluator
