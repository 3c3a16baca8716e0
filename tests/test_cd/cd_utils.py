"""Helpers of the change-detection tests: the tiny LEVIR-style folder, tiny CMID exports."""
import copy
import importlib.util
import os.path as osp
import sys

import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(REPO, 'tests', 'data', 'levir_cd_tiny')


def cmid_configs() -> dict:
    """The tiny CMID configs of tests/test_models/test_selfsup/test_cmid.py."""
    sys.path.insert(0, osp.join(REPO, 'tests', 'test_models', 'test_selfsup'))
    try:
        from test_cmid import CONFIGS
    finally:
        sys.path.pop(0)
    return CONFIGS


def load_tool(*parts):
    """Import a script under tools/ as a module."""
    path = osp.join(REPO, 'tools', *parts)
    spec = importlib.util.spec_from_file_location(osp.splitext(parts[-1])[0], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def export_tiny_cmid(arch: str, out_dir) -> str:
    """Build a tiny CMID (``arch`` of test_cmid.CONFIGS), save it like the Runner does and
    export its student backbone with tools/model_converters/export_cmid.py. Returns the path
    of the export, ``{'state_dict': {'backbone.<key>': tensor}, 'meta': {...}}``."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cmid_configs()[arch]))
    model.init_weights()
    ckpt = osp.join(str(out_dir), f'cmid_{arch}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1, iter=1)), ckpt)
    out = osp.join(str(out_dir), f'cmid_{arch}_backbone.pth')
    load_tool('model_converters', 'export_cmid.py').main([ckpt, out])
    return out
