# ISPRS Potsdam, mmseg's standard protocol: 6 classes, clutter (class 5) trained and counted.
# mmseg's PotsdamDataset, files and pipeline; DefaultSampler for epoch-based training.
# Data elsewhere: symlink it to data/potsdam, or override train_dataloader.dataset.data_root,
# val_dataloader.dataset.data_root and test_dataloader.dataset.data_root.
_base_ = ['mmseg::_base_/datasets/potsdam.py']
train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))
