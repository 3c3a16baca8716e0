# ISPRS Vaihingen, the CMID paper's protocol: clutter ignored, 5 classes trained and evaluated
# (cmid_mm VaihingenNoClutterDataset maps clutter to 255). Files as made by mmseg's
# tools/dataset_converters/vaihingen.py under data/vaihingen; mmseg's pipeline. Epoch-based
# training needs the DefaultSampler (mmseg's base has an infinite one).
# Data elsewhere: symlink it to data/vaihingen, or override train_dataloader.dataset.data_root,
# val_dataloader.dataset.data_root and test_dataloader.dataset.data_root.
_base_ = ['mmseg::_base_/datasets/vaihingen.py']
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VaihingenNoClutterDataset'))
val_dataloader = dict(dataset=dict(type='VaihingenNoClutterDataset'))
test_dataloader = val_dataloader
