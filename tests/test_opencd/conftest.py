"""Fixtures of the open-cd tests: the real open-cd (skip with the reason when absent)."""
import os

import pytest

from tests.test_opencd.opencd_utils import find_opencd


@pytest.fixture(scope='session')
def opencd_root():
    """The open-cd source checkout; the test is skipped (reason given) without open-cd."""
    root, reason = find_opencd()
    if root is None:
        pytest.skip(reason)
    return root


@pytest.fixture
def opencd_env(opencd_root, monkeypatch):
    """OPENCD_ROOT set (configs/opencd inherit open-cd's configs through it), in this process
    and for subprocesses; one intra-op thread (2-core machines)."""
    monkeypatch.setenv('OPENCD_ROOT', opencd_root)
    return dict(os.environ, OPENCD_ROOT=opencd_root, OMP_NUM_THREADS='1')


@pytest.fixture(scope='session')
def cmid_r18_export(tmp_path_factory):
    from tests.test_downstream.test_changedet.cd_utils import export_tiny_cmid
    return export_tiny_cmid('resnet', tmp_path_factory.mktemp('cmid_r18'))


@pytest.fixture(scope='session')
def cmid_swin_export(tmp_path_factory):
    from tests.test_downstream.test_changedet.cd_utils import export_tiny_cmid
    return export_tiny_cmid('swin', tmp_path_factory.mktemp('cmid_swin'))


@pytest.fixture(scope='session')
def cmid_r18_trained_like(cmid_r18_export, tmp_path_factory):
    """The tiny export as after pretraining: every float tensor moved off its initial value
    and the BN step counters at 1000 (a fresh CMID's BN weights are 1 / 0 and its counters 0,
    like any fresh BN's, so by value they would "load" from anywhere)."""
    import torch
    ckpt = torch.load(cmid_r18_export, weights_only=True)
    g = torch.Generator().manual_seed(1)
    for k, v in ckpt['state_dict'].items():
        if v.is_floating_point():
            ckpt['state_dict'][k] = v + 0.1 * torch.rand(v.shape, generator=g)  # var stays > 0
        elif k.endswith('num_batches_tracked'):
            ckpt['state_dict'][k] = torch.full_like(v, 1000)
    path = tmp_path_factory.mktemp('cmid_r18_trained') / 'cmid_r18_trained_like.pth'
    torch.save(ckpt, path)
    return str(path)


@pytest.fixture(scope='session')
def full_size_export(tmp_path_factory):
    """``full_size_export(kind)``: the path of a full-size CMID backbone export, ``kind`` one
    of ``r50`` / ``swin-b`` (as export_cmid.py writes them: ``backbone.*``, no Swin index
    buffers) or ``vit-b`` (the ``--mmseg-vit`` file: mmseg names, no prefix). Values moved off
    any fresh initialisation; made once per session on first use."""
    import torch
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    from cmid_mm.converters.export import export_checkpoint, to_mmseg_vit
    cfgs = {
        'r50': dict(type='CMIDResNet', depth=50, out_indices=(3, )),
        'swin-b': dict(type='CMIDSwinTransformer', arch='base', img_size=224,
                       out_indices=(3, )),
        'vit-b': dict(type='CMIDVisionTransformer', arch='base', img_size=224, patch_size=16,
                      out_type='featmap'),
    }
    tmp = tmp_path_factory.mktemp('cmid_full')
    made = {}

    def make(kind):
        if kind not in made:
            torch.manual_seed(0)
            backbone = PRETRAIN_MODELS.build(cfgs[kind])
            state = {}
            for k, v in backbone.state_dict().items():
                if v.is_floating_point():
                    v = v + 0.01 * torch.rand(v.shape)
                state['backbone.' + k] = v
            exported = export_checkpoint(dict(state_dict=state))
            if kind == 'vit-b':
                plain = {k[len('backbone.'):]: v for k, v in exported['state_dict'].items()}
                exported = dict(state_dict=to_mmseg_vit(plain), meta=exported['meta'])
            made[kind] = str(tmp / f'cmid_{kind}.pth')
            torch.save(exported, made[kind])
        return made[kind]

    return make
