# Folder-per-class scene classification at 224 px with the paper's fine-tuning augmentation
# (method.md §8): RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 (timm's recipe, written
# with mmpretrain's transforms as its own Swin/DeiT configs do). Mixup / CutMix are batch
# augments of the model (model.train_cfg.augments) and label smoothing is the head's loss.
# Inputs are normalised with ImageNet statistics, as the reference's downstream code did.
# The per-dataset files (ucm / aid / nwpu) set data_root, data_prefix and num_classes.
dataset_type = 'CustomDataset'
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],  # RGB, 0-255
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',  # "inc1"
        num_policies=2,
        total_level=10,
        magnitude_level=9,  # "m9"
        magnitude_std=0.5,  # "mstd0.5"
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',  # per-pixel normal noise (timm's remode='pixel')
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# ann files as written by tools/dataset_converters/split_folder_dataset.py (paths relative to
# data_root/data_prefix). For folders that are already split, use data_prefix='<split dir>'
# and ann_file='' instead: CustomDataset then scans the class folders.
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file='meta/train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file='meta/val.txt', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))  # top-1 = overall accuracy (OA)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
