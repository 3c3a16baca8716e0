"""``_base_ = 'cmid_mm::...'`` in a user's config (cmid_mm/utils/package_configs.py), in the
test environment's install of cmid_mm (editable: cmid_mm/.mim links to the checkout).
tests/test_packaging/test_wheel_install.py checks the same from a wheel install."""
import os.path as osp

import pytest
from mmengine.config import Config

import cmid_mm  # noqa: F401  (`import cmid_mm` makes mmengine resolve cmid_mm::)
from cmid_mm.utils.package_configs import package_configs_dir, resolve_package_config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _write(tmp_path, text, name='user_cfg.py'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_top_level_recipe_and_downstream_config_inherit(tmp_path):
    cfg = Config.fromfile(_write(tmp_path, "_base_ = 'cmid_mm::cmid_swin_pretrain.py'\n"
                                           "train_dataloader = dict(batch_size=5)\n"))
    ref = Config.fromfile(osp.join(REPO, 'configs', 'cmid_swin_pretrain.py'))
    assert cfg.train_dataloader.batch_size == 5
    cfg.train_dataloader.batch_size = ref.train_dataloader.batch_size
    # everything else is the recipe, and no `_scope_` was injected into the inherited dicts
    assert cfg.to_dict() == ref.to_dict()
    base = 'cmid_mm::segmentation/upernet_cmid-r50_4xb4-50e_potsdam-512x512.py'
    seg = Config.fromfile(_write(tmp_path, f"_base_ = ['{base}']\n"
                                           "model = dict(decode_head=dict(num_classes=3))\n"))
    assert (seg.default_scope, seg.model.backbone.depth, seg.model.decode_head.num_classes) == \
        ('mmseg', 50, 3)


def test_package_configs_dir_is_the_checkouts_configs():
    assert osp.realpath(package_configs_dir()) == osp.join(REPO, 'configs')
    assert resolve_package_config('cmid_mm::_base_/default_runtime.py').endswith(
        osp.join('configs', '_base_', 'default_runtime.py'))


def test_missing_or_escaping_paths_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'cmid_mm::nope/none\.py': no config "
                                               r"'nope/none\.py' in .*mim search cmid_mm"):
        Config.fromfile(_write(tmp_path, "_base_ = 'cmid_mm::nope/none.py'\n"))
    for bad in ('cmid_mm::../setup.py', 'cmid_mm::/etc/hostname'):
        with pytest.raises(ValueError, match='must be a path relative to'):
            resolve_package_config(bad)


def test_other_packages_are_left_to_mmengine(tmp_path):
    cfg = Config.fromfile(_write(tmp_path, "_base_ = 'mmpretrain::_base_/models/resnet18.py'\n"))
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 18
    # mmpretrain's base gets mmpretrain's scope from mmengine, as before
    assert cfg.model._scope_ == 'mmpretrain'
