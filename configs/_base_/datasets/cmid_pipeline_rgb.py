# CMID pipeline for 8-bit RGB images (method.md §2): two independent views A and B of each
# image, each with its own block mask and crop geometry. Normalisation is not here: the model's
# data preprocessor does it (and must set to_rgb=True: images stay BGR, mmcv's default, until
# then).
#
# Packed sample: inputs = [view A, view B], each a uint8 tensor (3, 224, 224); data_sample.mask
# (2, 56, 56) uint8 tensor; data_sample.crop_bbox (2, 4) float32 [top, left, height, width] and
# crop_src_shape (2, 2) [H, W] in pixels of the loaded image; data_sample.flip (2,) bool (numpy
# arrays); metainfo img_path.
_base_ = ['./cmid_views.py']  # crop_and_flip (224 px), colour_aug
crop_size = 224
block_mask = dict(
    type='BlockMaskGenerator',
    input_size=crop_size,
    block_size=32,
    token_stride=4,
    mask_ratio=0.6)

# View A: geometry only, no colour augmentation.
view_a = _base_.crop_and_flip + [block_mask]

# View B: same geometry, then the colour / degradation augmentations (cmid_views.py).
view_b = _base_.crop_and_flip + _base_.colour_aug + [block_mask]

train_pipeline = [
    dict(type='PerSampleSeed'),  # augmentation = f(seed, epoch, sample): exact resume
    # 8-bit 3-band files only: anything else (unreadable, grey, RGBA, 16-bit, N-band) stops
    # with the file name; on_error='skip' skips and counts such files instead.
    dict(type='LoadRSImageFromFile', channels=3),
    # Views are cropped from the original image. The reference first resizes every image to
    # 224x224: use cmid_pipeline_rgb_resize224.py for that.
    dict(type='CMIDMultiView', num_views=[1, 1], transforms=[view_a, view_b]),
    dict(
        type='PackInputs',
        algorithm_keys=['crop_bbox', 'crop_src_shape', 'flip'],
        meta_keys=['img_path']),
]
