"""CMID exports load into mmpretrain / mmseg / mmdet backbones exactly as the configs build them.

Each test builds a real CMID model, gives every tensor of it a unique value (so that a tensor
left at its default initialisation can never pass for a loaded one), saves it as a training
checkpoint, exports it with tools/model_converters/export_cmid.py, then builds the backbone
dict of a segmentation / detection config (only shrunk where noted) with the config's own
``init_cfg`` and calls ``init_weights()``. Also pinned down: the documented traps (ResNetV1c's
stem, the plain export in mmseg's ViT, mmdet Swin's ``convert_weights=True``).
"""
import copy
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.config import config as mmengine_config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

import cmid_mm  # noqa: F401  (registers CMID modules and the safe-loading allow-list)
# the tiny CMID models of the algorithm tests
from tests.test_models.test_selfsup.test_cmid import CONFIGS, _cfg
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG = osp.join(REPO, 'configs', 'segmentation')
DET = osp.join(REPO, 'configs', 'detection')
R50_SEG = osp.join(SEG, 'upernet_cmid-r50_4xb4-50e_potsdam-noclutter-512x512.py')
SWIN_SEG = osp.join(SEG, 'upernet_cmid-swin-b-w12_4xb4-50e_potsdam-noclutter-512x512.py')
VIT_SEG = osp.join(SEG, 'upernet_cmid-vit-b16_4xb4-50e_potsdam-noclutter-512x512.py')
R50_DET = osp.join(DET, 'faster-rcnn_cmid-r50_fpn_1x_dior.py')
SWIN_DET = osp.join(DET, 'faster-rcnn_cmid-swin-b-w7_fpn_1x_dior.py')

export_tool = load_tool('tools/model_converters/export_cmid.py')

# Tiny Swin of the CMID algorithm tests (window 2 at 64 px); downstream uses window 3.
SWIN_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
VIT_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, mlp_ratio=2)


@pytest.fixture(scope='module', autouse=True)
def fast_base_lookup():
    """mmengine resolves each ``mmseg::_base_/...`` / ``mmdet::_base_/...`` by first parsing
    all of the toolbox's model-zoo metafiles (about 1 s each time) and, not finding a `_base_`
    file there (they never are), falling back to the file path. Skip the futile search in
    the downstream tests (same result; imported as an autouse fixture by the other modules)."""
    original = mmengine_config._get_external_cfg_path

    def lookup(package_path, cfg_file):
        if cfg_file.startswith('_base_/'):
            raise ValueError('base configs are not in the metafiles')
        return original(package_path, cfg_file)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mmengine_config, '_get_external_cfg_path', lookup)
        yield


def _build_cmid(cfg: dict) -> torch.nn.Module:
    """A CMID model whose every tensor is distinct from any default initialisation."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in model.state_dict().items():  # tensors share the model's storage
            if key.endswith('running_var'):
                value.copy_(1 + 0.2 * torch.rand(value.shape, generator=g))
            elif value.is_floating_point():
                value.add_(0.02 * torch.randn(value.shape, generator=g))
            elif key.endswith('num_batches_tracked'):
                value.fill_(7)
    return model.eval()


def _export(model, folder, mmseg_vit=False) -> dict:
    """Save ``model`` as a training checkpoint, run the export tool; the exported file(s)."""
    ckpt = osp.join(folder, 'cmid.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 3, 'iter': 30}}, ckpt)
    out = osp.join(folder, 'backbone.pth')
    export_tool.main([ckpt, out] + (['--mmseg-vit'] if mmseg_vit else []))
    files = dict(path=out, state=torch.load(out, weights_only=True)['state_dict'])
    if mmseg_vit:
        files['vit_path'] = osp.join(folder, 'backbone_mmseg-vit.pth')
        files['vit_state'] = torch.load(files['vit_path'], weights_only=True)['state_dict']
    return files


def _backbone(config: str, checkpoint: str, **changes) -> torch.nn.Module:
    """Build and initialise the backbone of ``config`` as its Runner would, loading
    ``checkpoint`` through the config's init_cfg. ``changes`` shrink the architecture (or,
    in the trap tests, undo one of the config's settings)."""
    cfg = Config.fromfile(config)
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.update(changes)
    backbone.init_cfg.checkpoint = checkpoint
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    model = registry.build(backbone)
    model.init_weights()
    model = revert_sync_batchnorm(model)
    model.eval()  # (mmseg's / mmdet's ResNet.train() returns None: no chaining)
    return model


def _equal_keys(model, exported: dict, prefix: str = 'backbone.') -> list:
    """Names of the model's tensors that equal the exported tensor of the same name."""
    return [k for k, v in model.state_dict().items()
            if prefix + k in exported and exported[prefix + k].shape == v.shape
            and torch.equal(exported[prefix + k], v)]


# ------------------------------------------------------------------------------- ResNet-50
@pytest.fixture(scope='module')
def cmid_r50(tmp_path_factory):
    model = _build_cmid(_cfg(dict(type='CMIDResNet', depth=50, out_indices=(3, )), 2048,
                             with_bn=True))
    files = _export(model, str(tmp_path_factory.mktemp('r50')))
    return model.backbone, files


@pytest.mark.parametrize('toolbox', ['mmseg', 'mmdet', 'mmpretrain'])
def test_resnet50_export_loads_every_tensor(cmid_r50, toolbox):
    student, files = cmid_r50
    exported = files['state']
    # 53 conv + 53 BN x 5 tensors: torchvision's resnet50 without fc; no mask token
    assert len(exported) == 318 and 'backbone.mask_token' not in exported
    if toolbox == 'mmpretrain':  # the classification configs' backbone
        from mmpretrain.registry import MODELS
        init_default_scope('mmpretrain')
        model = MODELS.build(dict(type='ResNet', depth=50, init_cfg=dict(
            type='Pretrained', checkpoint=files['path'], prefix='backbone.')))
        model.init_weights()
        model.eval()
    else:
        model = _backbone(R50_SEG if toolbox == 'mmseg' else R50_DET, files['path'])
        assert type(model).__name__ == 'ResNet'
    assert len(model.state_dict()) == 318
    assert len(_equal_keys(model, exported)) == 318
    # Same function, not only the same names: the last stage equals the CMID student's.
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = student(x)[-1]
        got = model(x)[-1]
    assert got.shape == expected.shape == (1, 2048, 2, 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_resnetv1c_would_leave_the_stem_random(cmid_r50):
    """The trap the configs avoid: mmseg's default ResNetV1c (deep stem) loads silently
    without its stem: 312 of 330 tensors, no error."""
    _, files = cmid_r50
    model = _backbone(R50_SEG, files['path'], type='ResNetV1c')
    state = model.state_dict()
    loaded = _equal_keys(model, files['state'])
    assert len(state) == 330 and len(loaded) == 312
    not_loaded = sorted(set(state) - set(loaded))
    assert len(not_loaded) == 18 and all(k.startswith('stem.') for k in not_loaded)
    unused = sorted(k[len('backbone.'):] for k in files['state']
                    if k[len('backbone.'):] not in state)
    assert unused == ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean',
                      'bn1.running_var', 'bn1.weight', 'conv1.weight']


# ------------------------------------------------------------------------------------ Swin
@pytest.fixture(scope='module')
def cmid_swin(tmp_path_factory):
    model = _build_cmid(CONFIGS['swin'])
    files = _export(model, str(tmp_path_factory.mktemp('swin')))
    return model.backbone, files


def _resized_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """A (2w'-1)^2 x heads bias table bicubically resized to window ``window``."""
    side, heads = int(table.shape[0]**0.5), table.shape[1]
    new = 2 * window - 1
    return F.interpolate(table.permute(1, 0).reshape(1, heads, side, side), size=(new, new),
                         mode='bicubic').view(heads, new * new).permute(1, 0)


@pytest.mark.parametrize('config', [SWIN_SEG, SWIN_DET], ids=['mmseg', 'mmdet'])
def test_swin_export_loads_with_another_window(cmid_swin, config):
    """Pretrained with window 2, built with window 3: everything loads, bias tables are
    bicubically resized, only norm0..norm2 (not pretrained: CMID uses the last stage) and the
    rebuilt relative_position_index buffers come from the model itself."""
    _, files = cmid_swin
    exported = files['state']
    assert not [k for k in exported if k.endswith(('relative_position_index', 'attn_mask',
                                                   'mask_token'))]
    model = _backbone(config, files['path'], **SWIN_ARCH, window_size=3, pretrain_img_size=64)
    state = model.state_dict()
    plain = {k[len('backbone.'):]: v for k, v in exported.items()}
    assert set(plain) <= set(state)  # nothing in the file is left unused
    own = sorted(k for k in set(state) - set(plain) if not k.endswith('relative_position_index'))
    assert own == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    tables = [k for k in plain if k.endswith('relative_position_bias_table')]
    assert len(tables) == 4  # one per block
    for key, value in plain.items():
        if key in tables:
            assert value.shape[0] == 9 and state[key].shape[0] == 25
            torch.testing.assert_close(state[key], _resized_table(value, 3))
        else:
            assert torch.equal(state[key], value), key


def test_swin_same_window_matches_the_cmid_student(cmid_swin):
    """With the pretraining window the mmseg Swin computes what the CMID student computes
    (same patch merging and block order, not only the same names)."""
    student, files = cmid_swin
    model = _backbone(SWIN_SEG, files['path'], **SWIN_ARCH, window_size=2, pretrain_img_size=64)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = student(x)[-1]
        got = model(x)[3]
    assert got.shape == expected.shape == (1, 128, 2, 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_mmdet_swin_convert_weights_true_fails_on_cmid_names(cmid_swin):
    """mmdet's Swin configs default to convert_weights=True: its converter for Microsoft's key
    names prefixes every CMID key once more, and the bias-table resize then fails."""
    _, files = cmid_swin
    with pytest.raises(KeyError, match='relative_position_bias_table'):
        _backbone(SWIN_DET, files['path'], **SWIN_ARCH, window_size=2, convert_weights=True)


# ------------------------------------------------------------------------------------- ViT
@pytest.fixture(scope='module')
def cmid_vit(tmp_path_factory):
    model = _build_cmid(CONFIGS['vit'])
    files = _export(model, str(tmp_path_factory.mktemp('vit')), mmseg_vit=True)
    return model.backbone, files


def test_vit_mmseg_export_loads_and_computes_the_same(cmid_vit):
    student, files = cmid_vit
    vit = files['vit_state']
    assert not any(k.startswith('backbone.') or '.attn.qkv.' in k for k in vit)
    model = _backbone(VIT_SEG, files['vit_path'], **VIT_ARCH, img_size=(64, 64),
                      out_indices=(0, 1))
    state = model.state_dict()
    # 0 missing / 0 unexpected: patch embedding (with bias) 2 + cls token + pos embed +
    # 2 layers x 12 + final norm ln1 2
    assert set(state) == set(vit) and len(vit) == 30
    assert all(torch.equal(state[k], v) for k, v in vit.items())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = student(x)[-1]
        got = model(x)[-1]
    assert got.shape == expected.shape == (1, 32, 4, 4)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_vit_position_embedding_is_resized_for_larger_crops(cmid_vit):
    _, files = cmid_vit
    model = _backbone(VIT_SEG, files['vit_path'], **VIT_ARCH, img_size=(128, 128),
                      out_indices=(0, 1))
    pretrained = files['vit_state']['pos_embed']
    assert pretrained.shape == (1, 1 + 4 * 4, 32)
    assert model.pos_embed.shape == (1, 1 + 8 * 8, 32)
    assert torch.equal(model.pos_embed[:, :1], pretrained[:, :1])  # cls token position


def test_vit_plain_export_would_load_nothing_into_mmseg(cmid_vit):
    """The trap the --mmseg-vit file avoids: mmseg's ViT ignores init_cfg.prefix, so the
    plain `backbone.*` export leaves every tensor at its initial value, silently."""
    _, files = cmid_vit
    model = _backbone(VIT_SEG, files['path'], **VIT_ARCH, img_size=(64, 64), out_indices=(0, 1))
    plain = {k[len('backbone.'):]: v for k, v in files['state'].items()}
    assert not [k for k, v in model.state_dict().items()
                if k in plain and plain[k].shape == v.shape and torch.equal(plain[k], v)]
