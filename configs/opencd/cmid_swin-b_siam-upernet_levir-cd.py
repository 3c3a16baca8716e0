# CMID Swin-B in siamese UperNet + FCN auxiliary head (open-cd: SiamEncoderDecoder) on LEVIR-CD:
# open-cd's standard LEVIR-CD recipe (512 px crops, batch 8, 40k iterations). Native open-cd:
# default_scope 'opencd', open-cd's models, datasets, transforms and visualiser.
# Run with open-cd's own tools (or cmid_mm's tools/train.py / tools/test.py):
#   export OPENCD_ROOT=/path/to/open-cd        # the checkout whose configs are inherited
#   python $OPENCD_ROOT/tools/train.py configs/opencd/cmid_swin-b_siam-upernet_levir-cd.py \
#       --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_swin-b_backbone.pth \
#       train_dataloader.dataset.data_root=/data/LEVIR-CD \
#       val_dataloader.dataset.data_root=/data/LEVIR-CD \
#       test_dataloader.dataset.data_root=/data/LEVIR-CD
# Best checkpoint: highest F1 of the `changed` class (best_changed_F1_iter_*.pth).
_base_ = [
    './_base_/models/cmid_siam-upernet_swin-b.py',
    './_base_/common/levircd_512x512_40k.py',
    './_base_/schedules/swin-b_adamw_40k.py',
]

# mmseg's Swin fine-tuning recipe (_base_/schedules/swin-b_adamw_40k.py)
optim_wrapper = dict(_base_.swin_b_optim_wrapper, _delete_=True)
param_scheduler = _base_.swin_b_param_scheduler
