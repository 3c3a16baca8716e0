# mmseg's runtime for the change-detection configs, plus cmid_mm.downstream.changedet's import
# (registers the siamese models, CD datasets and CDIoUMetric; it imports cmid_mm, which
# registers SafeRunner and PretrainedLoadCheckHook).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['cmid_mm.downstream.changedet'], allow_failed_imports=False)
# SafeRunner (cmid_mm) also when another toolbox's train.py (mmseg's, open-cd's) builds the runner
runner_type = 'SafeRunner'
# Stop before training if the backbone's Pretrained weights did not all load (compared by
# value with the file; see cmid_mm/engine/hooks/pretrained_check_hook.py).
custom_hooks = [dict(type='PretrainedLoadCheckHook')]
