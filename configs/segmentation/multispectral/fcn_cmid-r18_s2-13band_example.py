# Example: a 13-band Sentinel-2 segmentation model (FCN on a ResNet-18 with 13 input channels)
# initialised from the multispectral CMID demo's export. A PIPELINE CHECK, not a benchmark: the
# labels of data/s2_13band/ann_dir are proxy classes (0 water / 1 vegetation / 2 other)
# computed from the bands themselves (NDVI, MNDWI); see data/s2_13band/README.md.
#   python tools/train.py configs/cmid_demo_resnet18_s2-13band.py
#   python tools/model_converters/export_cmid.py \
#       work_dirs/cmid_demo_resnet18_s2-13band/epoch_20.pth work_dirs/cmid_r18_s2-13band.pth
#   python tools/train.py configs/segmentation/multispectral/fcn_cmid-r18_s2-13band_example.py
# Spatial split: train = left halves of the two 512 px crops (8 tiles), val = right halves (8).
_base_ = ['../_base_/seg_runtime.py']

checkpoint = 'work_dirs/cmid_r18_s2-13band.pth'
band_names = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10',
              'B11', 'B12']
num_bands = len(band_names)
norm_cfg = dict(type='BN', requires_grad=True)  # plain BN: runs on CPU and one GPU
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        # per-band statistics of the pretraining tiles (data/s2_13band/band_stats.json), the
        # same normalisation as in pretraining; mmseg's preprocessor takes any number of bands
        mean=[1464.91, 1186.24, 953.34, 776.03, 894.05, 1163.70, 1280.95, 1255.00, 1349.33,
              589.97, 11.97, 994.24, 620.32],
        std=[142.26, 203.72, 231.46, 303.94, 367.51, 799.27, 955.46, 1003.71, 1109.29, 480.36,
             3.70, 967.57, 655.81],
        bgr_to_rgb=False,  # keep the file's band order
        pad_val=0,
        seg_pad_val=255,
        size=(128, 128)),
    pretrained=None,
    backbone=dict(
        type='ResNet',  # plain ResNet stem (conv1/bn1), as CMIDResNet
        depth=18,
        in_channels=num_bands,  # first conv 13 -> 64, loaded from the export
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(
        type='FCNHead',
        in_channels=512,
        in_index=3,
        channels=128,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=3,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# mmcv's LoadImageFromFile cannot read 13-band TIFFs: cmid_mm's loader, registered in
# mmpretrain (hence the scope prefix; `custom_imports` of the runtime registers it).
load = dict(type='mmpretrain.LoadRSImageFromFile', channels=num_bands, dtype='uint16',
            tiff_reader='tifffile', band_names=band_names, to_float32=True)
# N-band safe augmentations only (mmseg's PhotoMetricDistortion is 8-bit RGB).
train_pipeline = [
    load,
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [load, dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
dataset = dict(
    type='BaseSegDataset',
    data_root='data/s2_13band',
    metainfo=dict(classes=('water', 'vegetation', 'other'),
                  palette=[[0, 0, 255], [0, 160, 0], [160, 160, 160]]),
    img_suffix='.tif',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train')))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
max_epochs = 10
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_epochs,
                        by_epoch=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=5, save_best='mIoU', rule='greater'))
