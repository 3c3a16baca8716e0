"""A stock open-cd config with the changes configs/opencd/README.md documents loads every CMID
tensor (counted by value); leaving out any one change fails loudly instead of training a
partly random backbone.

The user's config is written the way the README shows: it inherits the stock file through
OPENCD_ROOT and changes only the backbone initialisation, its stem type, ``pretrained`` and
adds cmid_mm's runtime pieces."""
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cmid_mm.engine.hooks.pretrained_check_hook import (PretrainedLoadError,
                                                        check_pretrained_loads)
from tests.test_opencd.opencd_utils import REPO, TINY

STOCK = {
    'changer': 'configs/changer/changer_ex_r18_512x512_40k_levircd.py',  # IA_ResNetV1c
    'bit': 'configs/bit/bit_r18_256x256_40k_levircd.py',  # mmseg.ResNetV1c + pretrained URL
}
PLAIN_STEM = {'changer': 'IA_ResNet', 'bit': 'mmseg.ResNet'}


def user_config(tmp_path, stock, checkpoint, stem_type=None, prefix='backbone.',
                pretrained_none=True):
    """The README's recipe for a stock open-cd ResNet config; arguments undo one step."""
    init = f"dict(type='Pretrained', checkpoint={checkpoint!r}"
    init += f", prefix={prefix!r})" if prefix else ')'
    backbone = f"init_cfg={init}" + (f", type={stem_type!r}" if stem_type else '')
    text = (f"_base_ = ['{{{{$OPENCD_ROOT:}}}}/{STOCK[stock]}']\n"
            "custom_imports = dict(imports=['cmid_mm.downstream.changedet'],\n"
            "                      allow_failed_imports=False)\n"
            "runner_type = 'SafeRunner'\n"
            "custom_hooks = [dict(type='PretrainedLoadCheckHook')]\n"
            f"model = dict({'pretrained=None, ' if pretrained_none else ''}"
            f"backbone=dict({backbone}))\n")
    path = tmp_path / f'cmid_{stock}.py'
    path.write_text(text)
    return str(path)


def build(path):
    import opencd.models  # noqa: F401  (registers open-cd's models)
    from opencd.registry import MODELS
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_the_readme_documents_what_the_test_writes(opencd_env, tmp_path):
    """The config the tests below write is the README's recipe, step by step."""
    path = user_config(tmp_path, 'bit', 'cmid_r18.pth', PLAIN_STEM['bit'])
    cfg = Config.fromfile(path)
    assert cfg.model.pretrained is None and cfg.model.backbone.type == 'mmseg.ResNet'
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='cmid_r18.pth',
                                               prefix='backbone.')
    assert cfg.default_scope == 'opencd' and cfg.runner_type == 'SafeRunner'
    with open(osp.join(REPO, 'configs', 'opencd', 'README.md'), encoding='utf-8') as f:
        readme = ' '.join(f.read().split())
    for step in ('**`pretrained=None`** at model level', 'Use **`IA_ResNet`** in place of '
                 '`IA_ResNetV1c` and **`mmseg.ResNet`** in place of `mmseg.ResNetV1c`',
                 "**`init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='backbone.')`**",
                 "**`custom_imports = dict(imports=['cmid_mm.downstream.changedet'], "
                 "allow_failed_imports=False)`**",
                 "**`custom_hooks = [dict(type='PretrainedLoadCheckHook')]`**",
                 "**`runner_type = 'SafeRunner'`**",
                 "_base_ = ['{{$OPENCD_ROOT:}}/configs/"):
        assert step in readme, step


def test_stock_changer_with_the_changes_loads_0_missing_0_unexpected(opencd_env, tmp_path,
                                                                     cmid_r18_export):
    model = build(user_config(tmp_path, 'changer', cmid_r18_export, PLAIN_STEM['changer']))
    (report, ) = check_pretrained_loads(model)
    assert report.module_type == 'IA_ResNet'
    assert report.counts() == dict(loaded=120, resized=0, new_by_design=0, missing=0,
                                   not_loaded=0, unexpected=0)


def test_stock_bit_with_the_changes_loads_every_tensor_it_has(opencd_env, tmp_path,
                                                              cmid_r18_export):
    model = build(user_config(tmp_path, 'bit', cmid_r18_export, PLAIN_STEM['bit']))
    (report, ) = check_pretrained_loads(model)
    assert report.module_type == 'ResNet'
    # BIT's backbone stops after stage 3: the file's stage 4 (30 tensors) is unused, not missing
    assert report.counts() == dict(loaded=90, resized=0, new_by_design=0, missing=0,
                                   not_loaded=0, unexpected=30)
    assert {k.split('.')[0] for k in report.unexpected} == {'layer4'}


def test_keeping_the_deep_stem_fails_loudly(opencd_env, tmp_path, cmid_r18_export):
    model = build(user_config(tmp_path, 'changer', cmid_r18_export, stem_type=None))
    assert type(model.backbone).__name__ == 'IA_ResNetV1c'
    with pytest.raises(PretrainedLoadError, match=r"missing 15.*type='ResNet', not "
                                                  r"'ResNetV1c'"):
        check_pretrained_loads(model)


def test_leaving_out_the_prefix_fails_loudly(opencd_env, tmp_path, cmid_r18_trained_like):
    model = build(user_config(tmp_path, 'changer', cmid_r18_trained_like, PLAIN_STEM['changer'],
                              prefix=None))
    # all 100 learned tensors random (the 20 BN step counters are not weights)
    with pytest.raises(PretrainedLoadError, match=r"loaded 0, .*not loaded 100.*Hint: the "
                                                  r"file's keys start with 'backbone\.'.*"
                                                  r"set prefix='backbone\.'"):
        check_pretrained_loads(model)


def test_keeping_pretrained_or_a_bare_resnet_type_is_refused_at_build(opencd_env, tmp_path,
                                                                      cmid_r18_export):
    with pytest.raises(AssertionError, match='init_cfg and pretrained cannot be'):
        build(user_config(tmp_path, 'bit', cmid_r18_export, PLAIN_STEM['bit'],
                          pretrained_none=False))
    with pytest.raises(KeyError, match='ResNet is not in the opencd::model registry'):
        build(user_config(tmp_path, 'bit', cmid_r18_export, 'ResNet'))


def test_open_cd_train_stops_before_iteration_1_when_the_stem_stays_random(
        opencd_root, opencd_env, tmp_path, cmid_r18_export):
    """The hook in open-cd's own tools/train.py: a non-zero exit naming the problem, and no
    training iteration (a warning in a long log is what users got before)."""
    path = user_config(tmp_path, 'changer', cmid_r18_export, stem_type=None)
    cmd = [sys.executable, osp.join(opencd_root, 'tools', 'train.py'), path,
           '--work-dir', str(tmp_path / 'work'), '--cfg-options',
           f'train_dataloader.dataset.data_root={TINY}', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False', 'train_dataloader.batch_size=2',
           'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
           f'val_dataloader.dataset.data_root={TINY}',
           'train_dataloader.dataset.pipeline.3.crop_size=(48,48)']
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=opencd_env, capture_output=True,
                          text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'PretrainedLoadError' in log
    assert re.search(r'backbone \(IA_ResNetV1c\) did not load its pretrained weights .*'
                     r'missing 15', log)
    assert 'Iter(train)' not in log

