# CMID Swin-B in siamese UperNet + FCN auxiliary head (open-cd: SiamEncoderDecoder) on CDD: CDD
# with open-cd's svcd.py / schedule_40k (256 px pairs, batch 8, 40k iterations). Native open-cd:
# default_scope 'opencd', open-cd's models, datasets, transforms and visualiser.
# Run with open-cd's own tools (or cmid_mm's tools/train.py / tools/test.py):
#   export OPENCD_ROOT=/path/to/open-cd        # the checkout whose configs are inherited
#   python $OPENCD_ROOT/tools/train.py configs/opencd/cmid_swin-b_siam-upernet_cdd.py \
#       --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_swin-b_backbone.pth \
#       train_dataloader.dataset.data_root=/data/CDD \
#       val_dataloader.dataset.data_root=/data/CDD \
#       test_dataloader.dataset.data_root=/data/CDD
# Best checkpoint: highest F1 of the `changed` class (best_changed_F1_iter_*.pth).
_base_ = [
    './_base_/models/cmid_siam-upernet_swin-b.py',
    './_base_/common/cdd_256x256_40k.py',
]

# mmseg's Swin fine-tuning recipe: AdamW lr 6e-5, wd 0.01 (none on relative-position tables and
# norms), 1500 warm-up iterations, then linear decay to 0 at 40k
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)
]
