# mmseg's runtime for epoch-based schedules, plus cmid_mm.downstream.seg's import (registers the
# no-clutter datasets; it imports cmid_mm, which allow-lists Runner checkpoint contents for
# torch's safe loading and registers SafeRunner / PretrainedLoadCheckHook).
# The models use SyncBN (heads; ResNet backbone too), as mmseg does: mmengine turns it into BN
# when training is not distributed. torch's SyncBN needs GPUs: for a distributed CPU (gloo) run
# add --cfg-options model.decode_head.norm_cfg.type=BN model.auxiliary_head.norm_cfg.type=BN
# (and model.backbone.norm_cfg.type=BN for ResNet).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['cmid_mm.downstream.seg'], allow_failed_imports=False)
# mmengine's Runner plus cmid_mm's checkpoint guarantees (no code from checkpoints, CRC-checked
# loads, no non-finite saves; SECURITY.md), also under another toolbox's tools/train.py.
runner_type = 'SafeRunner'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=5, max_keep_ckpts=2,
                    save_best='mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
# Stop with the file name if a label value is outside the decode head's classes, and
# before training if the backbone's Pretrained weights did not all load (compared by value
# with the file; see cmid_mm/engine/hooks/pretrained_check_hook.py).
custom_hooks = [dict(type='SegLabelCheckHook'), dict(type='PretrainedLoadCheckHook')]
