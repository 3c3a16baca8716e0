"""PretrainedLoadCheckHook: a pretrained backbone that did not (all) load stops the run.

Real exports of tiny CMID models (every tensor given a value no initialiser produces, so a
tensor left at its initial value can never pass for a loaded one), loaded through the
toolboxes' own init_cfg machinery, then checked by value. The hook runs in a real Runner
training the repository's segmentation config (shrunk to ResNet-18, real tiles).
"""
import copy
import glob
import importlib
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import DefaultScope, Registry, init_default_scope
from mmengine.runner import Runner

import cmid_mm  # noqa: F401  (registers the hook)
from cmid_mm.engine.hooks.pretrained_check_hook import (PretrainedLoadCheckHook,
                                                        PretrainedLoadError,
                                                        check_pretrained_loads)
from tests.test_downstream.test_weight_loading import (SWIN_ARCH, SWIN_DET, SWIN_SEG, VIT_ARCH,
                                                       VIT_SEG, _build_cmid, _export)
# autouse fixture: faster mmX:: bases
from tests.test_downstream.test_weight_loading import fast_base_lookup  # noqa: F401
# the tiny CMID models of the algorithm tests
from tests.test_models.test_selfsup.test_cmid import CONFIGS as CMID_CONFIGS

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
LOGGER = 'pretrained_check_test'


@pytest.fixture(scope='module')
def r18(tmp_path_factory):
    """Export of a tiny CMID ResNet-18: 120 tensors `backbone.*` (torchvision's without fc)."""
    files = _export(_build_cmid(CMID_CONFIGS['resnet']), str(tmp_path_factory.mktemp('r18')))
    assert len(files['state']) == 120
    return files


@pytest.fixture(scope='module')
def swin(tmp_path_factory):
    """Export of a tiny CMID Swin (window 2, out_indices=(3, ): only norm3)."""
    return _export(_build_cmid(CMID_CONFIGS['swin']), str(tmp_path_factory.mktemp('swin')))


def _build(scope: str, cfg: dict) -> torch.nn.Module:
    """Build ``cfg`` in ``scope``'s registry and initialise it as the Runner does."""
    init_default_scope(scope)
    model = importlib.import_module(f'{scope}.registry').MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def _resnet(path, prefix='backbone.', **changes):
    init_cfg = dict(type='Pretrained', checkpoint=path)
    if prefix is not None:
        init_cfg['prefix'] = prefix
    return dict(dict(type='ResNet', depth=18), init_cfg=init_cfg, **changes)


def _from_config(config, path, prefix=None, **changes):
    """The backbone of one of our configs, shrunk by ``changes``, loading ``path``."""
    cfg = Config.fromfile(config)
    backbone = copy.deepcopy(cfg.model.backbone).to_dict()
    backbone.update(changes)
    backbone['init_cfg'] = dict(type='Pretrained', checkpoint=path,
                                **({'prefix': prefix} if prefix else {}))
    return cfg.default_scope, ConfigDict(backbone)  # (mmdet's Swin reads attributes)


def _check(model, **kwargs):
    (report, ) = check_pretrained_loads(model, logger=logging.getLogger(LOGGER), **kwargs)
    return report


# ------------------------------------------------------------------------- good loads
@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg', 'mmdet'])
def test_resnet18_export_with_prefix_loads_every_tensor(r18, scope):
    model = _build(scope, _resnet(r18['path']))
    report = _check(model)
    assert report.ok
    assert report.counts() == dict(loaded=120, resized=0, new_by_design=0, missing=0,
                                   not_loaded=0, unexpected=0)
    assert (report.checkpoint, report.prefix, report.stripped) == (r18['path'], 'backbone.',
                                                                  'backbone.')


@pytest.mark.parametrize('config', [SWIN_SEG, SWIN_DET], ids=['mmseg', 'mmdet'])
def test_swin_with_another_window_passes_and_lists_what_is_new(swin, config, caplog):
    """mmseg / mmdet Swin strip `backbone.` themselves (no prefix in the config) and resize the
    bias tables from window 2 to 3: resized by value, not 'not loaded'. The index buffers and
    the output norms of stages 0-2 are new by design, not errors."""
    scope, cfg = _from_config(config, swin['path'], **SWIN_ARCH, window_size=3,
                              pretrain_img_size=64)
    model = _build(scope, cfg)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = _check(model)
    assert report.ok and report.stripped == 'backbone.'
    tables = sorted(k for k, _ in report.resized)
    assert len(tables) == 4 and all(k.endswith('relative_position_bias_table') for k in tables)
    assert {s for _, s in report.resized} == {'(9, 1) -> (25, 1)', '(9, 2) -> (25, 2)'}
    new = dict(report.new_by_design)
    assert sorted(k for k in new if k.startswith('norm')) == [
        f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert sum(k.endswith('relative_position_index') for k in new) == 4 == len(new) - 6
    assert report.counts() == dict(loaded=len(swin['state']) - 4, resized=4, new_by_design=10,
                                   missing=0, not_loaded=0, unexpected=0)
    log = caplog.text
    assert 'NOT LOADED' not in log and '->  OK' in log
    assert "keys with 'backbone.' stripped" in log
    assert 'new by design (output norm of a stage the checkpoint has no norm for): ' \
        'norm0.weight, norm0.bias, norm1.weight' in log


# ----------------------------------------------------------------------------- traps
def test_missing_prefix_raises_with_the_prefix_hint(r18):
    """mmengine loads nothing (every key unexpected, a warning) and the backbone stays random."""
    model = _build('mmseg', _resnet(r18['path'], prefix=None))
    with pytest.raises(PretrainedLoadError) as info:
        _check(model)
    message = str(info.value)
    assert f"model (ResNet) did not load its pretrained weights from '{r18['path']}' " \
           '(no prefix): loaded 0' in message
    assert "the file's keys start with 'backbone.' and ResNet does not strip it: set " \
           "prefix='backbone.' in init_cfg" in message
    assert 'Not loaded: conv1.weight (value differs from the file)' in message
    # compared under the reading that explains the names; the 20 BN step counters are exempt
    report = _check(model, strict=False)
    assert report.counts() == dict(loaded=0, resized=0, new_by_design=20, missing=0,
                                   not_loaded=100, unexpected=0)


def test_strict_false_only_warns(r18, caplog):
    model = _build('mmseg', _resnet(r18['path'], prefix=None))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        (report, ) = check_pretrained_loads(model, strict=False,
                                            logger=logging.getLogger(LOGGER))
    assert not report.ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith('PretrainedLoadCheckHook (strict=False): model (ResNet) did not '
                            'load') and "set prefix='backbone.'" in m for m in warnings)
    assert any('NOT LOADED' in m for m in warnings)


def test_resnetv1c_deep_stem_raises_naming_the_stem(r18):
    """312 of 330 tensors load into an R50 ResNetV1c without a word; here R18: the 15 learned
    stem tensors stay random (+3 BN counters), conv1/bn1 of the file are unused."""
    model = _build('mmseg', _resnet(r18['path'], type='ResNetV1c'))
    with pytest.raises(PretrainedLoadError,
                       match=r"stem\.\* missing: this checkpoint has a plain ResNet stem "
                       r"\(conv1/bn1\), the model a deep stem: use type='ResNet', not "
                       r"'ResNetV1c'") as info:
        _check(model)
    assert 'missing 15' in str(info.value) and 'Missing: stem.0.weight' in str(info.value)
    report = _check(model, strict=False)
    assert report.counts() == dict(loaded=114, resized=0, new_by_design=3, missing=15,
                                   not_loaded=0, unexpected=6)
    assert all(k.startswith('stem.') for k in report.missing)
    assert sorted(report.unexpected) == ['bn1.bias', 'bn1.num_batches_tracked',
                                         'bn1.running_mean', 'bn1.running_var', 'bn1.weight',
                                         'conv1.weight']
    # allow_missing names tensors that are new on purpose
    report = _check(model, allow_missing=[r'^stem\.'])
    assert report.ok and report.counts()['new_by_design'] == 18


def test_shape_mismatch_is_not_loaded(r18):
    """A 4-band model from an RGB export: mmengine skips conv1 with a warning."""
    model = _build('mmseg', _resnet(r18['path'], in_channels=4))
    with pytest.raises(PretrainedLoadError, match=r'conv1\.weight \(shape \(64, 3, 7, 7\) in '
                       r'the file, \(64, 4, 7, 7\) in the model\)'):
        _check(model)
    assert _check(model, strict=False).counts()['loaded'] == 119


def test_value_overwritten_after_loading_is_caught(r18):
    model = _build('mmdet', _resnet(r18['path']))
    with torch.no_grad():  # what a later initialiser would do to one layer
        torch.nn.init.kaiming_normal_(model.layer4[1].conv2.weight)
    with pytest.raises(PretrainedLoadError, match=r'layer4\.1\.conv2\.weight \(value differs '
                       r'from the file\).*1 tensors match the file in name and shape but hold '
                       r'other values'):
        _check(model)


def test_mmseg_vit_ignores_the_prefix(tmp_path):
    """The plain `backbone.*` export with prefix='backbone.' loads nothing into mmseg's ViT."""
    files = _export(_build_cmid(CMID_CONFIGS['vit']), str(tmp_path))
    scope, cfg = _from_config(VIT_SEG, files['path'], prefix='backbone.', **VIT_ARCH,
                              img_size=(64, 64), out_indices=(0, 1))
    model = _build(scope, cfg)
    with pytest.raises(PretrainedLoadError, match=r'VisionTransformer of mmseg ignores '
                       r'init_cfg\.prefix .*--mmseg-vit') as info:
        _check(model)
    assert 'loaded 0,' in str(info.value)


def test_unreadable_file_and_no_pretrained_init(r18, tmp_path, caplog):
    model = _build('mmseg', _resnet(r18['path']))
    model.init_cfg['checkpoint'] = str(tmp_path / 'gone.pth')  # e.g. deleted since loading
    with pytest.raises(PretrainedLoadError, match=r"cannot read the pretrained checkpoint "
                       r"'.*gone\.pth' of model \(ResNet\)"):
        _check(model)
    model.init_cfg = dict(type='Kaiming', layer='Conv2d')
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert check_pretrained_loads(model, logger=logging.getLogger(LOGGER)) == []
    assert 'no module has a Pretrained init_cfg: nothing to check' in caplog.text


def test_damaged_export_is_refused_although_the_values_match(r18, tmp_path):
    """4 KB zeroed inside the largest record: the backbone loads the zeros and the file reads
    back the same zeros, so comparing values alone would pass; the record's CRC does not."""
    import shutil
    import zipfile
    path = str(tmp_path / 'damaged.pth')
    shutil.copy(r18['path'], path)
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), 'little') for _ in range(2))
        f.seek(info.header_offset + 30 + name_len + extra_len + 1024)
        f.write(b'\0' * 4096)
    model = _build('mmseg', _resnet(path))
    with pytest.raises(PretrainedLoadError, match=rf'{info.filename}.*fails its check'):
        _check(model)


# ----------------------------------------------------------------- hook and registries
@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg', 'mmdet', 'opencd_like'])
def test_hook_resolves_from_every_scope(scope):
    if scope == 'opencd_like':  # open-cd's HOOKS: a child of mmengine's root, own scope
        registry = Registry('hook', parent=ROOT_HOOKS, scope='opencd_like')
    else:
        registry = importlib.import_module(f'{scope}.registry').HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        hook = registry.build(dict(type='PretrainedLoadCheckHook', strict=False,
                                   allow_missing=['^head']))
    assert isinstance(hook, PretrainedLoadCheckHook)
    assert hook.strict is False and hook.allow_missing[0].pattern == '^head'
    with pytest.raises(ValueError, match=r"allow_missing entry '\(' is not a regular"):
        PretrainedLoadCheckHook(allow_missing=['('])


DOWNSTREAM = sorted(
    p for folder in ('classification', 'segmentation', 'detection', 'changedet')
    for p in glob.glob(osp.join(REPO, 'configs', folder, '**', '*.py'), recursive=True)
    if '_base_' not in p)


@pytest.mark.parametrize('config', DOWNSTREAM, ids=lambda p: osp.relpath(p, REPO))
def test_every_downstream_config_uses_the_hook(config):
    cfg = Config.fromfile(config)
    # cmid_mm itself or one of its downstream parts (each imports cmid_mm, hence the hook)
    assert any(m == 'cmid_mm' or m.startswith('cmid_mm.downstream.')
               for m in cfg.custom_imports['imports'])
    assert dict(type='PretrainedLoadCheckHook') in cfg.custom_hooks
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'


def _seg_runner(work_dir, weights, prefix='backbone.', **extra):
    """The repository's R50 segmentation config shrunk to ResNet-18 / 64 px on the real
    seg_tiny tiles (one epoch of 2 training iterations, no validation), loading ``weights``."""
    from tests.test_downstream.test_segmentation import _tiny_config
    work_dir.mkdir()
    path = osp.join(str(work_dir), 'tiny.py')
    _tiny_config(path)
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=weights,
                                       **({'prefix': prefix} if prefix else {}))
    cfg.work_dir = str(work_dir)
    for loop in ('val', 'test'):  # training only (the check runs before it)
        cfg[f'{loop}_cfg'] = cfg[f'{loop}_dataloader'] = cfg[f'{loop}_evaluator'] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.merge_from_dict(extra)
    return Runner.from_cfg(cfg)


def _log(work_dir) -> str:
    (path, ) = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    with open(path) as f:
        return f.read()


def test_runner_stops_before_the_first_iteration(r18, tmp_path):
    runner = _seg_runner(tmp_path / 'a', r18['path'], prefix=None)
    assert [type(h).__name__ for h in runner.hooks].count('PretrainedLoadCheckHook') == 1
    with pytest.raises(PretrainedLoadError, match=r"backbone \(ResNet\) did not load .*set "
                       r"prefix='backbone\.'"):
        runner.train()
    assert runner.iter == 0 and 'Epoch(train)' not in _log(tmp_path / 'a')
    # strict=False: the same run trains, with the warning in its log
    runner = _seg_runner(tmp_path / 'b', r18['path'], prefix=None, custom_hooks=[
        dict(type='PretrainedLoadCheckHook', strict=False)])
    runner.train()
    log = _log(tmp_path / 'b')
    assert runner.iter == 2 and 'PretrainedLoadCheckHook (strict=False): backbone (ResNet) ' \
        'did not load' in log


def test_runner_with_a_good_load_trains_and_load_from_skips(r18, tmp_path):
    runner = _seg_runner(tmp_path / 'a', r18['path'])
    runner.train()
    log = _log(tmp_path / 'a')
    assert runner.iter == 2
    assert (f"pretrained weights of backbone (ResNet) <- {r18['path']} (prefix 'backbone.'):"
            in log)
    assert 'loaded 120 | resized 0 | new by design 0 | missing 0 | not loaded 0 | ' \
        'unexpected (unused in the file) 0  ->  OK' in log
    # load_from replaces the init_cfg weights: the wrong prefix is then harmless, not checked
    ckpt = str(tmp_path / 'a' / 'epoch_1.pth')
    runner = _seg_runner(tmp_path / 'b', r18['path'], prefix=None, load_from=ckpt)
    runner.train()
    assert f"PretrainedLoadCheckHook: skipped, this run loads load_from='{ckpt}'" in \
        _log(tmp_path / 'b')
