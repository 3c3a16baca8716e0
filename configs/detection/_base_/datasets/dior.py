# DIOR horizontal boxes, 20 classes (cmid_mm DIORDataset; layout in
# cmid_mm/downstream/det_datasets.py) under data/DIOR: train on train + val (11,725 images),
# validate and test on the test split (11,738 images), 800x800 images, as mmdet's VOC recipe
# (train on trainval, evaluate on test). VOC-style mAP at IoU 0.5, all-point ('area') AP;
# set val_evaluator.eval_mode='11points' (and test_evaluator's) to compare with numbers
# computed with the VOC2007 metric.
# Data elsewhere: symlink it to data/DIOR, or override the four data roots:
#   train_dataloader.dataset.datasets.0.data_root=D/
#   train_dataloader.dataset.datasets.1.data_root=D/
#   val_dataloader.dataset.data_root=D/ test_dataloader.dataset.data_root=D/
dataset_type = 'DIORDataset'
data_root = 'data/DIOR/'
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(800, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(800, 800), keep_ratio=True),
    # after Resize: ground-truth boxes stay in original image coordinates for evaluation
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type=dataset_type, data_root=data_root, ann_file='ImageSets/Main/train.txt',
                 img_subdir='JPEGImages-trainval',
                 ann_subdir='Annotations/Horizontal Bounding Boxes',
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline,
                 backend_args=backend_args),
            dict(type=dataset_type, data_root=data_root, ann_file='ImageSets/Main/val.txt',
                 img_subdir='JPEGImages-trainval',
                 ann_subdir='Annotations/Horizontal Bounding Boxes',
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline,
                 backend_args=backend_args),
        ]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Main/test.txt',
        img_subdir='JPEGImages-test',
        ann_subdir='Annotations/Horizontal Bounding Boxes',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator
