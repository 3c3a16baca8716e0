# ISPRS Potsdam, the CMID paper's protocol: clutter ignored, 5 classes trained and evaluated
# (cmid_mm PotsdamNoClutterDataset maps clutter to 255). Files as made by mmseg's
# tools/dataset_converters/potsdam.py (512x512 patches, img_dir/ann_dir, train/val) under
# data/potsdam; mmseg's pipeline (random rescale 0.5-2, 512x512 crop, flip, photometric
# distortion). Epoch-based training needs the DefaultSampler (mmseg's base has an infinite one).
# Data elsewhere: symlink it to data/potsdam, or override train_dataloader.dataset.data_root,
# val_dataloader.dataset.data_root and test_dataloader.dataset.data_root.
_base_ = ['mmseg::_base_/datasets/potsdam.py']
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='PotsdamNoClutterDataset'))
val_dataloader = dict(dataset=dict(type='PotsdamNoClutterDataset'))
test_dataloader = val_dataloader
