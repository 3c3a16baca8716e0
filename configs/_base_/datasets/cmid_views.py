# The view transforms of the CMID pipeline for 8-bit images (method.md §2), as variables:
# view A = crop_and_flip + block mask, view B = crop_and_flip + colour_aug + block mask.
# Used by cmid_pipeline_rgb.py (224 px), the RGB demo (128 px) and the study's CMID (96 px);
# those set the crop scale (`dict(_base_.crop_and_flip[0], scale=...)`) and the block mask.
crop_and_flip = [
    dict(
        type='RandomResizedCropWithBox',
        scale=224,
        crop_ratio_range=(0.3, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
# View B's colour / degradation augmentations at the paper's rates.
colour_aug = [
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
]
