# CMID pipeline for 8-bit RGB images (method.md §2): two independent views A and B of each
# image, each with its own block mask and crop geometry. Normalisation is not here: the model's
# data preprocessor does it (and must set to_rgb=True: images stay BGR, mmcv's default, until
# then).
#
# Packed sample: inputs = [view A, view B], each a uint8 tensor (3, 224, 224); data_sample.mask
# (2, 56, 56) uint8 tensor; data_sample.crop_bbox (2, 4) float32 [top, left, height, width] and
# crop_src_shape (2, 2) [H, W] in pixels of the loaded image; data_sample.flip (2,) bool (numpy
# arrays); metainfo img_path.
crop_size = 224

crop_and_flip = [
    dict(
        type='RandomResizedCropWithBox',
        scale=crop_size,
        crop_ratio_range=(0.3, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
block_mask = dict(
    type='BlockMaskGenerator',
    input_size=crop_size,
    block_size=32,
    token_stride=4,
    mask_ratio=0.6)

# View A: geometry only, no colour augmentation.
view_a = crop_and_flip + [block_mask]

# View B: same geometry, then the colour / degradation augmentations at the paper's rates.
view_b = crop_and_flip + [
    dict(
        type='RandomApply',
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
        ],
        prob=0.8),
    # mmpretrain's GaussianBlur is PIL's ImageFilter.GaussianBlur(radius): `radius` is the
    # Gaussian sigma in pixels, here uniform in [0.1, 2.0] (magnitude_std='inf' draws the
    # magnitude uniformly from the range). PIL has no kernel-size argument: its (3-pass box)
    # blur of an 8-bit impulse spans +-2 px at sigma 0.5 and +-5 px at sigma 2, instead of the
    # reference's kernel of 3-7 px (+-1..3 px), so large sigmas blur somewhat more than in the
    # reference (at sigma 0.1 PIL leaves an 8-bit image unchanged).
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=1.0),
    dict(type='RandomGaussianNoise', prob=0.6, var_range=(10., 50.)),
    dict(type='Solarize', thr=128, prob=0.2),
    # luminance weights in BGR order (images are BGR here)
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    block_mask,
]

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
