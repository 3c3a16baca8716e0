"""Helpers of the change-detection tests: the tiny LEVIR-style folder, tiny CMID exports."""
import copy
import os.path as osp

import torch

from tests.utils import REPO, load_tool

TINY = osp.join(REPO, 'tests', 'data', 'levir_cd_tiny')


def cmid_configs() -> dict:
    """The tiny CMID configs of tests/test_models/test_selfsup/test_cmid.py."""
    from tests.test_models.test_selfsup.test_cmid import CONFIGS
    return CONFIGS


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
    load_tool('tools/model_converters/export_cmid.py').main([ckpt, out])
    return out


def changedet_config(name: str, options: dict = None):
    """configs/changedet/``name``, with ``options`` merged in."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'changedet', name))
    if options:
        cfg.merge_from_dict(options)
    return cfg


def build_changedet(cfg):
    """The (initialised) model of a configs/changedet config, built in mmseg's scope."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model
