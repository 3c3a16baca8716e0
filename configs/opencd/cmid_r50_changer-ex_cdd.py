# CMID ResNet-50 in ChangerEx (open-cd: DIEncoderDecoder, feature exchange between the dates,
# Changer head) on CDD: CDD with open-cd's svcd.py / schedule_40k (256 px pairs, batch 8, 40k
# iterations). Native open-cd: default_scope 'opencd', open-cd's models, datasets, transforms and
# visualiser.
# Run with open-cd's own tools (or cmid_mm's tools/train.py / tools/test.py):
#   export OPENCD_ROOT=/path/to/open-cd        # the checkout whose configs are inherited
#   python $OPENCD_ROOT/tools/train.py configs/opencd/cmid_r50_changer-ex_cdd.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/CDD \
#       val_dataloader.dataset.data_root=/data/CDD \
#       test_dataloader.dataset.data_root=/data/CDD
# Best checkpoint: highest F1 of the `changed` class (best_changed_F1_iter_*.pth).
_base_ = [
    './_base_/models/cmid_changer-ex_r50.py',
    './_base_/common/cdd_256x256_40k.py',
    './_base_/changer-ex_aug.py',
]

# ChangerEx's training augmentation (_base_/changer-ex_aug.py) without the crop: CDD pairs
# are 256 px
train_pipeline = [
    t for t in _base_.changer_ex_train_pipeline if t['type'] != 'MultiImgRandomCrop'
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# ChangerEx's optimiser (open-cd's changer_ex_r18 / _s50): AdamW lr 5e-3, wd 0.05
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.005, betas=(0.9, 0.999), weight_decay=0.05))
# with open-cd's AdamW schedule (its common/standard_* files): 1000 warm-up iterations, then
# linear decay to 0 at 40k (instead of schedule_40k's SGD poly decay)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1000, end=40000, by_epoch=False)
]
