"""Stock model-zoo configs of mmpretrain, mmseg and mmdet take CMID exports with only the
changes the README shows: every backbone tensor loads (0 missing, 0 unexpected, equal to the
CMID student's -- or teacher's with ``--source teacher``). Counted, because the toolboxes only
log mismatches."""
import copy
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.test_downstream.test_weight_loading import _build_cmid, export_tool  # noqa: F401
# autouse fixture: faster mmX:: bases
from tests.test_downstream.test_weight_loading import fast_base_lookup  # noqa: F401
from tests.test_models.test_selfsup.test_cmid import _cfg

ZOO = {
    'mmpretrain': dict(
        r50='resnet/resnet50_8xb32_in1k.py', swin='swin_transformer/swin-tiny_16xb64_in1k.py',
        vit='vision_transformer/vit-base-p16_64xb64_in1k.py'),
    'mmseg': dict(
        r50='upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py',
        swin='swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
        vit='vit/vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py'),
    'mmdet': dict(
        r50='faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        swin='swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'),
}
# A small ViT (the zoo's ViT-B otherwise) keeps the test fast; everything else is the zoo's.
VIT_SMALL = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)

CMID = {
    'r50': _cfg(dict(type='CMIDResNet', depth=50, out_indices=(3, )), 2048, with_bn=True),
    'swin': _cfg(dict(type='CMIDSwinTransformer', arch='tiny', img_size=224, out_indices=(3, )),
                 768),
    'vit': _cfg(dict(type='CMIDVisionTransformer', arch=VIT_SMALL, img_size=224,
                     patch_size=16, out_type='featmap'), 64, stride=16, num_matches=6),
}


def readme_changes(toolbox: str, arch: str, path: str) -> dict:
    """Exactly the edits README.md tells users to make to a zoo config's model."""
    if arch == 'r50':
        backbone = dict(init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
        if toolbox == 'mmseg':  # zoo uses ResNetV1c (deep stem) + an open-mmlab URL
            backbone.update(type='ResNet', depth=50)
            return dict(pretrained=None, backbone=backbone)
        return dict(backbone=backbone)
    if arch == 'swin':
        backbone = dict(init_cfg=dict(type='Pretrained', checkpoint=path))
        if toolbox == 'mmpretrain':
            backbone['init_cfg']['prefix'] = 'backbone.'
        if toolbox == 'mmdet':
            backbone['convert_weights'] = False
        return dict(backbone=backbone)
    if toolbox == 'mmseg':  # the --mmseg-vit file; our ViT keeps its final norm
        return dict(pretrained=None, backbone=dict(
            init_cfg=dict(type='Pretrained', checkpoint=path), patch_bias=True,
            final_norm=True))
    return dict(backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.')))


def _build_zoo_backbone(toolbox, arch, path):
    pkg = osp.dirname(importlib.import_module(toolbox).__file__)
    cfg = Config.fromfile(osp.join(pkg, '.mim', 'configs', ZOO[toolbox][arch]))
    changes = readme_changes(toolbox, arch, path)
    # assignment, like `init_cfg=dict(_delete_=True, ...)` in an inheriting config (the zoo's
    # init_cfg may be a list of initialisers)
    cfg.model.backbone.update(changes.pop('backbone'))
    cfg.model.update(changes)
    backbone = copy.deepcopy(cfg.model.backbone)
    if arch == 'vit':  # small instead of ViT-B (test speed)
        if toolbox == 'mmseg':  # (224 px too, so pos_embed is not resized on load)
            backbone.update(embed_dims=64, num_layers=2, num_heads=2, mlp_ratio=2,
                            out_indices=(1, ), img_size=(224, 224))
        else:
            backbone.update(arch=VIT_SMALL)
    if cfg.model.get('pretrained') is not None:
        raise AssertionError('README changes must clear the zoo `pretrained`')
    init_default_scope(toolbox)
    model = importlib.import_module(f'{toolbox}.registry').MODELS.build(backbone)
    model.init_weights()
    return model


@pytest.fixture(scope='module', params=['r50', 'swin', 'vit'])
def exported(request, tmp_path_factory):
    arch = request.param
    model = _build_cmid(CMID[arch])
    folder = tmp_path_factory.mktemp(arch)
    ckpt = osp.join(folder, 'cmid.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    files = {}
    for source in ('student', 'teacher'):
        out = osp.join(folder, f'{source}.pth')
        export_tool.main([ckpt, out, '--source', source] + (['--mmseg-vit'] if arch == 'vit'
                                                            else []))
        files[source] = out
    return arch, model, files


@pytest.mark.parametrize('toolbox', ['mmpretrain', 'mmseg', 'mmdet'])
@pytest.mark.parametrize('source', ['student', 'teacher'])
def test_zoo_config_loads_every_backbone_tensor(exported, toolbox, source):
    arch, cmid, files = exported
    if arch not in ZOO[toolbox]:
        pytest.skip(f'{toolbox} has no {arch} zoo config used here')
    path = files[source]
    if arch == 'vit' and toolbox == 'mmseg':
        path = path[:-4] + '_mmseg-vit.pth'
    model = _build_zoo_backbone(toolbox, arch, path)
    loaded = torch.load(path, weights_only=True)['state_dict']
    prefix = '' if (arch == 'vit' and toolbox == 'mmseg') else 'backbone.'
    expected = {k[len(prefix):]: v for k, v in loaded.items()}
    own = model.state_dict()
    # buffers the export leaves out on purpose (rebuilt from the window size)
    own = {k: v for k, v in own.items() if not k.endswith('relative_position_index')}
    # mmseg / mmdet Swin build norm0..3 for all stages; CMID pretrains the last stage's only
    own_only = {k for k in own if k not in expected}
    if arch == 'swin' and toolbox != 'mmpretrain':
        assert own_only == {f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')}
    else:
        assert own_only == set(), sorted(own_only)[:5]
    assert set(expected) - set(own) == set(), sorted(set(expected) - set(own))[:5]
    src = cmid.backbone if source == 'student' else cmid.teacher.module.backbone
    src_sd = {k: v for k, v in src.state_dict().items() if k != 'mask_token'}
    if arch == 'vit' and toolbox == 'mmseg':
        src_sd = {k.replace('.attn.qkv.', '.attn.attn.in_proj_').replace(
            '.attn.proj.', '.attn.attn.out_proj.'): v for k, v in src_sd.items()}
    for k in expected:  # same window (7) as pretraining: nothing is resized
        assert torch.equal(own[k], src_sd[k]), k
    assert len(expected) == len(src_sd) - sum(k.endswith('relative_position_index')
                                              for k in src_sd)
