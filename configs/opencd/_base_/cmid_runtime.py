# What every CMID open-cd config adds to open-cd's runtime (keys open-cd's configs never set,
# so this file can sit beside open-cd's files in a `_base_` list):
# - cmid_mm.downstream.changedet registers mmseg.CDIoUMetric and mmseg.IA_SwinTransformer; it
#   imports cmid_mm, which registers SafeRunner and PretrainedLoadCheckHook and lets torch's
#   safe loading read Runner checkpoints (open-cd's tools/test.py needs that for the
#   checkpoints its tools/train.py writes);
# - SafeRunner: checkpoints load without running code; none is written with NaN/Inf weights;
# - PretrainedLoadCheckHook: before the first iteration, every backbone tensor with a
#   Pretrained init is compared with the file by value; the run stops, with counts and a hint,
#   if any stayed at its random initialisation (0 silently random pretrained parameters).
custom_imports = dict(imports=['cmid_mm.downstream.changedet'], allow_failed_imports=False)
runner_type = 'SafeRunner'
custom_hooks = [dict(type='PretrainedLoadCheckHook')]
