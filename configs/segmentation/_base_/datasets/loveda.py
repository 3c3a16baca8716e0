# LoveDA, mmseg's standard protocol: 7 classes (label 0 = no data, ignored), 1024x1024 images,
# random rescale around 2048x512, 512x512 crops; evaluated on the val split at 1024x1024
# (the test split has no public labels). Files as made by mmseg's
# tools/dataset_converters/loveda.py under data/loveDA. DefaultSampler for epoch-based training.
# Data elsewhere: symlink it to data/loveDA, or override train_dataloader.dataset.data_root,
# val_dataloader.dataset.data_root and test_dataloader.dataset.data_root.
_base_ = ['mmseg::_base_/datasets/loveda.py']
train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))
