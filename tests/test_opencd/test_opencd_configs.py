"""configs/opencd: native open-cd configs (scope, models, datasets, visualiser of open-cd,
inherited from its checkout through OPENCD_ROOT) with the CMID settings; at full size each
model loads a full-size CMID ResNet-50 / Swin-B export with 0 silently random tensors."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cmid_mm.engine.hooks.pretrained_check_hook import check_pretrained_loads
from tests.test_opencd.opencd_utils import REPO

DIR = osp.join(REPO, 'configs', 'opencd')
NAMES = sorted(osp.basename(p) for p in glob.glob(osp.join(DIR, 'cmid_*.py')))
MODEL = {  # model -> (detector, decode head)
    'changer-ex': ('DIEncoderDecoder', 'Changer'),
    'bit': ('SiamEncoderDecoder', 'BITHead'),
    'siam-upernet': ('SiamEncoderDecoder', 'mmseg.UPerHead'),
}
BACKBONE = {  # (backbone, model) -> type
    ('r50', 'changer-ex'): 'IA_ResNet', ('swin-b', 'changer-ex'): 'mmseg.IA_SwinTransformer',
    ('r50', 'bit'): 'mmseg.ResNet', ('swin-b', 'bit'): 'mmseg.SwinTransformer',
    ('r50', 'siam-upernet'): 'mmseg.ResNet', ('swin-b', 'siam-upernet'): 'mmseg.SwinTransformer',
}


def _parts(name):
    _, backbone, model, data = osp.splitext(name)[0].split('_')
    return backbone, model, data


def _config(name):
    return Config.fromfile(osp.join(DIR, name))


def test_the_expected_configs_exist():
    assert NAMES == sorted(f'cmid_{b}_{m}_{d}.py' for b in ('r50', 'swin-b')
                           for m in MODEL for d in ('levir-cd', 'cdd'))


def test_without_opencd_root_the_error_names_the_variable(monkeypatch):
    monkeypatch.delenv('OPENCD_ROOT', raising=False)
    with pytest.raises(KeyError, match='OPENCD_ROOT'):
        Config.fromfile(osp.join(DIR, 'cmid_r50_bit_levir-cd.py'))


@pytest.mark.parametrize('name', NAMES)
def test_config_is_open_cd_native_with_the_cmid_settings(opencd_env, name):
    backbone, model_name, data = _parts(name)
    cfg = _config(name)
    # open-cd's runtime, visualiser and visualisation hook
    assert cfg.default_scope == 'opencd'
    assert cfg.visualizer.type == 'CDLocalVisualizer'
    assert cfg.default_hooks.visualization.type == 'CDVisualizationHook'
    # cmid_mm's runner, strict loading check, changed-class metric and best checkpoint
    assert cfg.custom_imports == dict(imports=['cmid_mm.downstream.changedet'],
                                      allow_failed_imports=False)
    assert cfg.runner_type == 'SafeRunner'
    assert cfg.custom_hooks == [dict(type='PretrainedLoadCheckHook')]
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator == dict(type='mmseg.CDIoUMetric', iou_metrics=['mFscore', 'mIoU'])
    assert cfg.default_hooks.checkpoint.save_best == 'changed_F1'
    assert cfg.default_hooks.checkpoint.rule == 'greater'
    # open-cd's models with the CMID backbone set up as documented
    model = cfg.model
    assert (model.type, model.decode_head.type) == MODEL[model_name]
    assert model.pretrained is None
    assert model.data_preprocessor.type == 'DualInputSegDataPreProcessor'
    bb = model.backbone
    assert bb.type == BACKBONE[(backbone, model_name)]
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.checkpoint == cfg.checkpoint
    if backbone == 'r50':
        assert bb.depth == 50 and bb.init_cfg.prefix == 'backbone.'
        assert cfg.checkpoint == 'work_dirs/cmid_r50_backbone.pth'
    else:
        assert (bb.embed_dims, bb.depths[:3], bb.window_size) == (128, [2, 2, 18], 7)
        assert cfg.checkpoint == 'work_dirs/cmid_swin-b_backbone.pth'
    if model_name == 'changer-ex':
        assert [c if c is None else c['type'] for c in bb.interaction_cfg] == [
            None, 'SpatialExchange', 'ChannelExchange', 'ChannelExchange']
    # open-cd's datasets and transforms
    dataset = 'LEVIR_CD_Dataset' if data == 'levir-cd' else 'SVCD_Dataset'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == dataset
        assert loader.dataset.pipeline[0].type == 'MultiImgLoadImageFromFile'
        assert loader.dataset.pipeline[-1].type == 'MultiImgPackSegInputs'
    if data == 'cdd':
        assert cfg.train_dataloader.dataset.data_prefix.seg_map_path == 'train/OUT'
    train_types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    if model_name == 'changer-ex':
        assert 'MultiImgExchangeTime' in train_types
    assert ('MultiImgRandomCrop' in train_types) == (data == 'levir-cd')
    assert cfg.train_cfg.max_iters == (250000 if (model_name, data) == ('bit', 'cdd')
                                       else 40000)


@pytest.mark.parametrize('model_name', list(MODEL))
@pytest.mark.parametrize('backbone', ['r50', 'swin-b'])
def test_cdd_and_levir_configs_share_the_model(opencd_env, backbone, model_name):
    levir = _config(f'cmid_{backbone}_{model_name}_levir-cd.py')
    cdd = _config(f'cmid_{backbone}_{model_name}_cdd.py')
    assert levir.model == cdd.model


# (loaded, new by design, unexpected) of each full-size model. The files: ResNet-50 318
# tensors (53 convs, 53 BNs x 5 incl. step counters), Swin-B 327 (no index buffers, norm3 only)
FULL_SIZE = {
    ('r50', 'changer-ex'): (318, 0, 0),
    ('r50', 'siam-upernet'): (318, 0, 0),
    # stage 4 unused by BIT: 3 Bottlenecks x (3 convs + 3 BNs x 5) + downsample conv + BN x 5
    ('r50', 'bit'): (318 - 60, 0, 60),
    # new by design: 24 relative_position_index buffers, norm0-2 weight / bias
    ('swin-b', 'changer-ex'): (327, 24 + 6, 0),
    ('swin-b', 'siam-upernet'): (327, 24 + 6, 0),
    # cut after stage 3: stage 4, the stage-3 patch merging and norm3 of the file unused
    # (31); new: the 22 index buffers of stages 1-3 and norm2 weight / bias
    ('swin-b', 'bit'): (327 - 31, 22 + 2, 31),
}


@pytest.mark.parametrize('backbone,model_name', list(FULL_SIZE))
def test_full_size_model_loads_a_full_size_cmid_export(opencd_env, full_size_export,
                                                       backbone, model_name):
    import opencd.models  # noqa: F401
    from opencd.registry import MODELS
    cfg = _config(f'cmid_{backbone}_{model_name}_levir-cd.py')
    cfg.model.backbone.init_cfg.checkpoint = full_size_export(backbone)
    with DefaultScope.overwrite_default_scope('opencd'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    (report, ) = check_pretrained_loads(model)  # strict: raises on any random tensor
    loaded, new, unexpected = FULL_SIZE[(backbone, model_name)]
    c = report.counts()
    assert (c['loaded'] + c['resized'], c['new_by_design'], c['unexpected']) == (
        loaded, new, unexpected)
    assert c['missing'] == c['not_loaded'] == 0
    model.eval()
    with torch.no_grad():
        logits = model._forward(torch.rand(1, 6, 64, 64))
    assert logits.shape[:2] == (1, 2)
