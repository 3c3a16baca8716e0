"""Every config of the repository runs under SafeRunner, whichever tool builds its runner:
tools/train.py and tools/test.py use it, and another toolbox's train.py (mmpretrain's, mmseg's,
mmdet's, open-cd's) builds ``runner_type`` from its registry, which must resolve it."""
import glob
import importlib
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import cmid_mm  # noqa: F401
from cmid_mm.engine import SafeRunner, build_runner

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = sorted(p for pattern in (('configs', '**', '*.py'),
                                    ('projects', 'benchmarks', 'configs', '*.py'))
                 for p in glob.glob(osp.join(REPO, *pattern), recursive=True)
                 if '_base_' not in p)


def test_there_are_configs_of_every_kind():
    kinds = {osp.relpath(p, REPO).split('/')[-2] for p in CONFIGS}
    assert {'classification', 'segmentation', 'detection', 'changedet', 'opencd',
            'configs'} <= kinds  # 'configs': the recipes and the study's configs
    assert len(CONFIGS) >= 40


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_runs_under_safe_runner_from_its_scope(config, monkeypatch):
    if osp.relpath(config, REPO).startswith(osp.join('configs', 'opencd')):
        # open-cd's own config files are their _base_ (found through $OPENCD_ROOT)
        from tests.test_opencd.opencd_utils import find_opencd
        root, reason = find_opencd()
        if root is None:
            pytest.skip(reason)
        monkeypatch.setenv('OPENCD_ROOT', root)
    cfg = Config.fromfile(config)
    assert cfg.get('runner_type') == 'SafeRunner', f'{config}: set runner_type = "SafeRunner"'
    scope = cfg.get('default_scope', 'mmengine')
    registry = importlib.import_module(f'{scope}.registry').RUNNERS
    with DefaultScope.overwrite_default_scope(scope):
        assert registry.get('SafeRunner') is SafeRunner


def test_build_runner_warns_about_a_runner_that_is_not_safe():
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    @RUNNERS.register_module(force=True)
    class PlainTestRunner(Runner):

        @classmethod
        def from_cfg(cls, cfg):
            return cls.__new__(cls)

    with pytest.warns(UserWarning, match="runner_type='PlainTestRunner' is not a SafeRunner"):
        runner = build_runner(Config(dict(runner_type='PlainTestRunner')))
    assert type(runner).__name__ == 'PlainTestRunner'
