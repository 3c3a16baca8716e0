# Random initialisation (no training): the ResNet-18 every method starts from, built with
# mmpretrain's default initialisation under the run's seed. Only model.backbone and the input
# normalisation are used (by projects/benchmarks/learning_signal_study.py).
_base_ = ['./_base_/study_common.py']
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean={{_base_.pool_mean}},
                           std={{_base_.pool_std}}, to_rgb=True),
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'))
