# ChangerEx's training augmentation (open-cd's changer_ex_* configs: rotation / flips, 512 px
# random crops, date exchange, photometric distortion) as a variable, because open-cd's
# dataset recipes (in _base_/common) already set train_pipeline. The LEVIR-CD configs use it as
# is; the CDD configs drop the crop (CDD pairs are 256 px).
changer_ex_train_pipeline = [
    dict(type='MultiImgLoadImageFromFile'),
    dict(type='MultiImgLoadAnnotations'),
    dict(type='MultiImgRandomRotFlip', rotate_prob=0.5, flip_prob=0.5, degree=(-20, 20)),
    dict(type='MultiImgRandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='MultiImgExchangeTime', prob=0.5),
    dict(
        type='MultiImgPhotoMetricDistortion',
        brightness_delta=10,
        contrast_range=(0.8, 1.2),
        saturation_range=(0.8, 1.2),
        hue_delta=10),
    dict(type='MultiImgPackSegInputs')
]
