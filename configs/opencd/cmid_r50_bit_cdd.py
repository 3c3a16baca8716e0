# CMID ResNet-50 in BIT (open-cd: SiamEncoderDecoder, bitemporal image transformer head) on CDD:
# the CMID paper's protocol: BIT on CDD (open-cd's svcd.py), 200 epochs. Native open-cd:
# default_scope 'opencd', open-cd's models, datasets, transforms and visualiser.
# Run with open-cd's own tools (or cmid_mm's tools/train.py / tools/test.py):
#   export OPENCD_ROOT=/path/to/open-cd        # the checkout whose configs are inherited
#   python $OPENCD_ROOT/tools/train.py configs/opencd/cmid_r50_bit_cdd.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/cmid_r50_backbone.pth \
#       train_dataloader.dataset.data_root=/data/CDD \
#       val_dataloader.dataset.data_root=/data/CDD \
#       test_dataloader.dataset.data_root=/data/CDD
# Best checkpoint: highest F1 of the `changed` class (best_changed_F1_iter_*.pth).
_base_ = [
    './_base_/models/cmid_bit_r50.py',
    './_base_/common/cdd_256x256_200ep.py',
]
