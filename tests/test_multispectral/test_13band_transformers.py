"""13-band CMID with Swin and ViT students, end to end in one process: one training step on
batches the 13-band demo pipeline makes from the real Sentinel-2 tiles (64 px views, tiny
widths), then export with tools/model_converters/export_cmid.py and load into mmseg's and
mmpretrain's 13-channel backbones with every key accounted for."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import cmid_mm  # noqa: F401  (registers the CMID modules)
from tests.test_downstream.test_weight_loading import (  # noqa: F401 (fast_base_lookup: autouse)
    SWIN_ARCH, SWIN_SEG, VIT_ARCH, VIT_SEG, _backbone, export_tool, fast_base_lookup)
# the tiny CMID models of the algorithm tests
from tests.test_models.test_selfsup.test_cmid import CONFIGS

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

BANDS = 13
SIZE = 64  # views of 64 px: 2x2 mask blocks of 32 px, a 16x16 stride-4 mask grid
PRETRAIN = osp.join(REPO, 'configs', 'cmid_demo_resnet18_s2-13band.py')
# Swin's Conv2d(13, 16, 4, 4) patch embedding, ViT's Conv2d(13, 32, 16, 16)
PATCH_EMBED = {'swin': (16, BANDS, 4, 4), 'vit': (32, BANDS, 16, 16)}
# The downstream backbones: mmseg's as the Potsdam UperNet configs build them (their init_cfg,
# norm_cfg, ...), mmpretrain's built directly; all shrunk to the CMID students' sizes and given
# 13 input channels.
MMSEG = {
    'swin': (SWIN_SEG, dict(SWIN_ARCH, window_size=2, pretrain_img_size=SIZE)),
    'vit': (VIT_SEG, dict(VIT_ARCH, img_size=(SIZE, SIZE), out_indices=(0, 1))),
}
MMPRETRAIN = {
    'swin': dict(type='SwinTransformer', arch=dict(SWIN_ARCH), img_size=SIZE, window_size=2),
    'vit': dict(type='VisionTransformer', arch=dict(CONFIGS['vit']['backbone']['arch']),
                img_size=SIZE, patch_size=16, out_type='featmap'),
}
# Keys of the downstream model that no export holds, and why (everything else must load):
# Swin's relative_position_index buffers are rebuilt from the window size (the export drops
# them), and mmseg's 4-output Swin has output norms norm0..norm2 of stages CMID does not use.
# (fast_base_lookup: an autouse fixture that skips mmengine's futile metafile search)
SWIN_INDEX = {f'stages.{i}.blocks.0.attn.w_msa.relative_position_index' for i in range(4)}
NOT_IN_EXPORT = {
    ('swin', 'mmseg'): SWIN_INDEX | {f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')},
    ('swin', 'mmpretrain'): SWIN_INDEX,
    ('vit', 'mmseg'): set(),
    ('vit', 'mmpretrain'): set(),
}
# Tensors in the export: Swin 4 stages x 1 block (13 each: 2 norms x 2, bias table, qkv 2,
# proj 2, 2 FFN linears x 2) + 3 patch mergings (norm 2 + bias-free reduction 1) + patch
# embedding (conv 2 + norm 2) + norm3 (2) = 67; ViT: patch embed 2 + cls token + pos embed + 2 layers x
# 12 + final norm 2 = 30.
NUM_EXPORTED = {'swin': 67, 'vit': 30}


def demo_dataset_cfg(**view_changes):
    """The 13-band demo's train dataset config; ``view_changes`` = ``{transform type: {key:
    value}}`` applied to every transform of that type in CMIDMultiView's view pipelines."""
    dataset = copy.deepcopy(Config.fromfile(PRETRAIN).train_dataloader.dataset)
    multi_view = next(t for t in dataset.pipeline if t['type'] == 'CMIDMultiView')
    for view in multi_view.transforms:
        for t in view:
            t.update(view_changes.get(t['type'], {}))
    return dataset


def _s2_batch(batch_size=2):
    """A collated batch of the 13-band demo's train pipeline (64 px views) on real tiles."""
    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    dataset = demo_dataset_cfg(RandomResizedCropWithBox=dict(scale=SIZE),
                               BlockMaskGenerator=dict(input_size=SIZE))
    dataset.update(data_root=osp.join(REPO, 'data', 's2_13band'), indices=batch_size)
    dataset = DATASETS.build(dataset)
    return (default_collate([dataset[i] for i in range(batch_size)]),
            Config.fromfile(PRETRAIN).model.data_preprocessor)


@pytest.fixture(scope='module')
def s2_batch():
    return _s2_batch()


@pytest.fixture(scope='module', params=['swin', 'vit'])
def trained(request, s2_batch, tmp_path_factory):
    """(arch, CMID model after one training step, its losses, exported files)."""
    from mmpretrain.registry import MODELS
    arch = request.param
    data, preprocessor = s2_batch
    cfg = copy.deepcopy(CONFIGS[arch])
    cfg['backbone']['in_channels'] = BANDS
    cfg['mim_head']['in_chans'] = BANDS
    cfg['data_preprocessor'] = preprocessor  # the demo's 13 per-band means / stds
    init_default_scope('mmpretrain')
    MessageHub.get_current_instance().update_info('max_iters', 10)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    before = copy.deepcopy(model.backbone.state_dict())
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01))
    losses = model.train_step(copy.deepcopy(data), optim)
    changed = [k for k, v in model.backbone.state_dict().items()
               if not torch.equal(v, before[k])]

    folder = str(tmp_path_factory.mktemp(arch))
    ckpt = osp.join(folder, 'cmid.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1, 'iter': 1}}, ckpt)
    out = osp.join(folder, 'backbone.pth')
    export_tool.main([ckpt, out] + (['--mmseg-vit'] if arch == 'vit' else []))
    files = {'mmpretrain': out,
             'mmseg': osp.join(folder, 'backbone_mmseg-vit.pth') if arch == 'vit' else out}
    return arch, model.eval(), losses, changed, files


def test_one_13_band_training_step(trained, s2_batch):
    arch, model, losses, changed, _ = trained
    data, _ = s2_batch
    assert [tuple(v.shape) for v in data['inputs']] == [(2, BANDS, SIZE, SIZE)] * 2
    assert set(losses) == {'loss', 'loss_rec', 'loss_global', 'loss_local'}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert model.backbone.patch_embed.projection.weight.shape == PATCH_EMBED[arch]
    assert 'patch_embed.projection.weight' in changed  # the 13-band stem was trained
    assert model.mim_head.decoder[0].out_features == model.mim_head.encoder_stride**2 * BANDS
    # the MIM head rebuilds all 13 bands at full resolution from the normalised view
    inputs = model.data_preprocessor(copy.deepcopy(data), True)['inputs']
    with torch.no_grad():
        rec = model.mim_head(model.backbone(inputs[0])[-1])
    assert rec.shape == (2, BANDS, SIZE, SIZE)


@pytest.mark.parametrize('toolbox', ['mmseg', 'mmpretrain'])
def test_export_loads_into_13_channel_downstream_backbone(trained, toolbox):
    arch, model, _, _, files = trained
    exported = torch.load(files[toolbox], weights_only=True)['state_dict']
    assert len(exported) == NUM_EXPORTED[arch]
    if toolbox == 'mmseg':
        config, changes = MMSEG[arch]
        downstream = _backbone(config, files['mmseg'], in_channels=BANDS, **changes)
    else:
        from mmpretrain.registry import MODELS
        init_default_scope('mmpretrain')
        downstream = MODELS.build(dict(MMPRETRAIN[arch], in_channels=BANDS, init_cfg=dict(
            type='Pretrained', checkpoint=files['mmpretrain'], prefix='backbone.')))
        downstream.init_weights()
        downstream.eval()
    # the names the model sees: mmpretrain strips the prefix, mmseg's Swin strips it itself,
    # the mmseg ViT file has none
    exported = {k.removeprefix('backbone.'): v for k, v in exported.items()}
    state = downstream.state_dict()
    missing = set(state) - set(exported)
    unexpected = set(exported) - set(state)
    assert unexpected == set()
    assert missing == NOT_IN_EXPORT[arch, toolbox]
    assert state['patch_embed.projection.weight'].shape == PATCH_EMBED[arch]
    different = [k for k, v in exported.items() if not torch.equal(state[k], v)]
    assert different == []
    # same function on a 13-band input, not only the same names
    x = torch.randn(1, BANDS, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.backbone(x)[-1]
        got = downstream(x)[-1]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_a_3_channel_downstream_backbone_is_the_trap(trained):
    """Forgetting in_channels=13 downstream: mmseg's Swin stops with a size mismatch, mmseg's
    ViT only logs it and keeps a random patch embedding (every other tensor loads)."""
    arch, _, _, _, files = trained
    config, changes = MMSEG[arch]
    if arch == 'swin':
        with pytest.raises(RuntimeError, match='size mismatch for patch_embed.projection'):
            _backbone(config, files['mmseg'], **changes)
        return
    downstream = _backbone(config, files['mmseg'], **changes)
    exported = torch.load(files['mmseg'], weights_only=True)['state_dict']
    state = downstream.state_dict()
    assert state['patch_embed.projection.weight'].shape == (32, 3, 16, 16)
    loaded = [k for k, v in exported.items() if torch.equal(state[k], v)]
    assert sorted(set(exported) - set(loaded)) == ['patch_embed.projection.weight']
