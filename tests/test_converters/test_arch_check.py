"""arch_check: a backbone file of another architecture is an error naming the file, the model
and the mismatched keys (mmengine's loader only logs it); tools/analysis_tools/check_weights.py."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401  (registers the CMID backbones, safe checkpoint loading)
from cmid_mm.converters.arch_check import (CheckpointArchMismatch, backbone_weights,
                                           check_backbone_checkpoint)
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


@pytest.fixture(scope='module')
def r50_file(tmp_path_factory):
    from mmpretrain.models import ResNet
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'resnet50_backbone.pth'
    sd = ResNet(depth=50).state_dict()
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in sd.items()}}, path)
    return str(path)


def test_resnet50_file_into_resnet18_is_logged_by_mmengine_but_raised_here(r50_file):
    backbone = MODELS.build(dict(type='CMIDResNet', depth=18, out_indices=(3, )))
    before = backbone.conv1.weight.clone()
    # mmengine's loader (what init_cfg=Pretrained does): no error, the stem is overwritten
    load_checkpoint(backbone, r50_file, strict=False, revise_keys=[(r'^backbone\.', '')],
                    logger='silent')
    assert not torch.equal(backbone.conv1.weight, before)
    with pytest.raises(CheckpointArchMismatch) as info:
        check_backbone_checkpoint(backbone, r50_file)
    msg, report = str(info.value), info.value.report
    assert r50_file in msg and 'CMIDResNet(depth=18)' in msg
    assert 'layer1.0.conv1.weight (64, 64, 1, 1) vs (64, 64, 3, 3)' in msg
    assert 'in the file but not in the backbone: layer1.0.conv3.weight' in msg
    assert ('layer1.0.conv3.weight' in report.unexpected and not report.missing
            and 'mask_token' not in report.missing)  # the CMID token is not a mismatch
    assert 'conv1.weight' in report.matched  # same stem in both


def test_swin_bigger_file_into_smaller_swin(tmp_path):
    def swin(dims, depths):
        return MODELS.build(dict(type='SwinTransformer', img_size=64, window_size=4, arch=dict(
            embed_dims=dims, depths=depths, num_heads=[1, 2, 2, 4])))

    path = str(tmp_path / 'swin_big.pth')
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in swin(32, [2, 2, 4, 2]).state_dict().items()}}, path)
    with pytest.raises(CheckpointArchMismatch) as info:
        check_backbone_checkpoint(swin(16, [2, 2, 2, 2]), path)
    msg = str(info.value)
    assert 'SwinTransformer(embed_dims=16)' in msg
    assert 'patch_embed.projection.weight (32, 3, 4, 4) vs (16, 3, 4, 4)' in msg
    assert 'stages.2.blocks.2.' in msg  # the extra blocks of the bigger file
    assert check_backbone_checkpoint(swin(32, [2, 2, 4, 2]), path).ok


def test_wrong_prefix_says_which_prefixes_exist(r50_file):
    with pytest.raises(ValueError, match=r"no key starts with prefix 'teacher\.'.*prefix=''"):
        backbone_weights(torch.load(r50_file), prefix='teacher.', source=r50_file)


def test_check_weights_cli_exit_code_and_keys(r50_file, tmp_path):
    cli = osp.join(REPO, 'tools', 'analysis_tools', 'check_weights.py')
    proc = subprocess.run([sys.executable, cli, DEMO, r50_file], capture_output=True,
                          text=True, timeout=300, env=ENV, cwd=REPO)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'MISMATCH' in proc.stderr and 'CMIDResNet(depth=18)' in proc.stderr
    assert 'layer1.0.conv3.weight' in proc.stderr
