# Demo: multispectral CMID, ResNet-18 on 13-band Sentinel-2 tiles (data/s2_13band/, real L1C
# uint16, bands B01..B08, B8A, B09..B12), 128 px views, batch 8, 20 epochs = 40 iterations
# (2.1-2.4 s each measured on 2 CPU cores shared with other jobs: about 1.5 min).
#   python tools/train.py configs/cmid_demo_resnet18_s2-13band.py
#   python tools/model_converters/export_cmid.py \
#       work_dirs/cmid_demo_resnet18_s2-13band/epoch_20.pth work_dirs/cmid_r18_s2-13band.pth
#   python tools/train.py configs/segmentation/multispectral/fcn_cmid-r18_s2-13band_example.py
# What changes against the RGB demo (docs/multispectral.md): the TIFFs are read with tifffile,
# the model's first conv and the MIM decoder take / rebuild 13 bands, the inputs are normalised
# with per-band statistics (tools/analysis_tools/band_stats.py), and view B uses band-agnostic
# photometric augmentations instead of mmpretrain's 8-bit RGB ones.
_base_ = ['./cmid_demo_resnet18_rs-sample.py']

band_names = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10',
              'B11', 'B12']
num_bands = len(band_names)
# The RGB demo's views (crop_size 128, block mask), resized with cv2: float32 bands, 4 at a time.
crop_and_flip = [dict(_base_.crop_and_flip[0], backend='cv2'), _base_.crop_and_flip[1]]
block_mask = _base_.block_mask
# Per-band mean / std of data/s2_13band (data/s2_13band/band_stats.json, from
# tools/analysis_tools/band_stats.py), file band order: the normalisation, and the noise scale.
band_mean = [1464.91, 1186.24, 953.34, 776.03, 894.05, 1163.70, 1280.95, 1255.00, 1349.33,
             589.97, 11.97, 994.24, 620.32]
band_std = [142.26, 203.72, 231.46, 303.94, 367.51, 799.27, 955.46, 1003.71, 1109.29, 480.36,
            3.70, 967.57, 655.81]
# View B of the reference with band-agnostic transforms: ColorJitter -> per-band gain jitter,
# GaussianBlur -> the same blur for all bands, noise relative to each band's std (0.09-0.2 std,
# the strength of the reference's RGB noise; its 8-bit scale would be ~1400 DN on uint16, 380x
# the cirrus band's std). Solarize and RandomGrayscale have no multispectral meaning: left out.
band_aug = [
    dict(type='RandomBandGainJitter', prob=0.8, brightness=0.4, contrast=0.4, band_jitter=0.1),
    dict(type='RandomBandGaussianBlur', prob=1.0, sigma_range=(0.1, 2.0)),
    dict(type='RandomGaussianNoise', prob=0.6, std_range=(0.09, 0.2), band_std=band_std),
]
train_pipeline = [
    dict(type='PerSampleSeed'),
    # uint16 13-band GeoTIFFs (checked), converted to float32 after the checks
    dict(type='LoadRSImageFromFile', channels=num_bands, dtype='uint16',
         min_size=_base_.crop_size, tiff_reader='tifffile', band_names=band_names, to_float32=True),
    dict(
        type='CMIDMultiView',
        num_views=[1, 1],
        transforms=[crop_and_flip + [block_mask], crop_and_flip + band_aug + [block_mask]]),
    dict(
        type='PackInputs',
        algorithm_keys=['crop_bbox', 'crop_src_shape', 'flip'],
        meta_keys=['img_path']),
]
train_dataloader = dict(
    batch_size=8,
    dataset=dict(data_root='data/s2_13band', data_prefix='img_dir', pipeline=train_pipeline))

model = dict(
    data_preprocessor=dict(
        type='MultiBandSelfSupDataPreprocessor',  # mmengine's accepts only 1 or 3 values
        mean=band_mean,
        std=band_std,
        to_rgb=False),
    backbone=dict(in_channels=num_bands),  # first conv 13 -> 64
    mim_head=dict(in_chans=num_bands))  # decoder rebuilds the 13 normalised bands

# 16 tiles / batch 8 = 2 iterations per epoch
optim_wrapper = dict(optimizer=dict(lr=1e-3 * 8 / 64))
default_hooks = dict(logger=dict(interval=2))
