"""An unknown backbone arch / depth names the value, the config key and the choices."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401  (registers the CMID backbones)
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')


def test_unknown_backbone_arch_names_it_and_the_choices():
    cfg = Config.fromfile(DEMO).model
    cfg.backbone.depth = 19
    with pytest.raises(KeyError, match=r'depth=19 .*model\.backbone\.depth .*\[18, 34, 50'):
        MODELS.build(cfg)
    with pytest.raises(AssertionError, match=r"Arch huge is not in default archs .*'base'"):
        MODELS.build(dict(type='CMIDSwinTransformer', arch='huge'))
    with pytest.raises(AssertionError, match=r"Arch b2 is not in default archs .*'base'"):
        MODELS.build(dict(type='CMIDVisionTransformer', arch='b2'))
    with pytest.raises(KeyError, match='ResNet19 is not in the mmpretrain::model registry'):
        MODELS.build(dict(type='ResNet19'))
