# mmpretrain's runtime, plus cmid_mm's import (safe loading of CMID Runner checkpoints; the
# classifiers are mmpretrain's, so the pretraining import is all they need) and
# checkpoints / logs sized for datasets of a few thousand images.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['cmid_mm'], allow_failed_imports=False)
# mmengine's Runner plus cmid_mm's checkpoint guarantees (no code from checkpoints, CRC-checked
# loads, no non-finite saves; SECURITY.md), also under another toolbox's tools/train.py.
runner_type = 'SafeRunner'
# Stop before training if the backbone's Pretrained weights did not all load (compared by
# value with the file; see cmid_mm/engine/hooks/pretrained_check_hook.py).
custom_hooks = [dict(type='PretrainedLoadCheckHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3, save_best='auto'))
