# The reference behaviour: every image is first resized to 224x224 (bicubic, aspect ignored),
# then both views are cropped from that (crop boxes are in pixels of the resized image).
# Use it instead of cmid_pipeline_rgb.py in a dataset config, e.g.
#   _base_ = ['./cmid_pipeline_rgb_resize224.py']
_base_ = ['./cmid_pipeline_rgb.py']

train_pipeline = [
    dict(type='PerSampleSeed'),  # augmentation = f(seed, epoch, sample): exact resume
    # 8-bit 3-band files only: anything else (unreadable, grey, RGBA, 16-bit, N-band) stops
    # with the file name; on_error='skip' skips and counts such files instead.
    dict(type='LoadRSImageFromFile', channels=3),
    dict(type='Resize', scale=224, keep_ratio=False, interpolation='bicubic', backend='pillow'),
    dict(
        type='CMIDMultiView',
        num_views=[1, 1],
        transforms=[{{_base_.view_a}}, {{_base_.view_b}}]),
    dict(
        type='PackInputs',
        algorithm_keys=['crop_bbox', 'crop_src_shape', 'flip'],
        meta_keys=['img_path']),
]
