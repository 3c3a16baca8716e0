"""Old module paths and the old `custom_imports=['cmid_mm']` of downstream configs keep working
for one release, with a DeprecationWarning that names the new place."""
import json
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config

from cmid_mm._deprecated import MOVED_MODULES
from cmid_mm.engine.runner import import_downstream_for_old_configs

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _fresh(code):
    """Run ``code`` in a fresh interpreter (nothing of cmid_mm imported yet); its JSON line."""
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_old_module_path_is_the_new_module_with_a_warning():
    out = _fresh(f"""
        import importlib, json, warnings
        import cmid_mm
        result = {{}}
        for old, new in {MOVED_MODULES!r}.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                mod_old = importlib.import_module(old)
            mod_new = importlib.import_module(new)
            msgs = [str(w.message) for w in caught if w.category is DeprecationWarning]
            result[old] = [mod_old is mod_new, mod_new.__spec__.name,
                           any(f'{{old}} moved to {{new}}' in m for m in msgs)]
        print(json.dumps(result))
        """)
    assert set(out) == set(MOVED_MODULES)
    for old, (same, spec_name, warned) in out.items():
        assert same, old
        assert spec_name == MOVED_MODULES[old], old  # the module keeps its own spec
        assert warned, old


def test_old_package_names_of_cmid_mm_downstream():
    out = _fresh("""
        import json, warnings
        import cmid_mm.downstream.seg, cmid_mm.downstream.det  # (their own import warnings)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            from cmid_mm.downstream import PotsdamNoClutterDataset, DIORDataset
        from cmid_mm.downstream.seg import PotsdamNoClutterDataset as new_seg
        from cmid_mm.downstream.det import DIORDataset as new_det
        print(json.dumps([PotsdamNoClutterDataset is new_seg, DIORDataset is new_det,
                          sorted({str(w.message).split(' ')[0] for w in caught
                                  if w.category is DeprecationWarning})]))
        """)
    assert out == [True, True, ['cmid_mm.downstream.DIORDataset',
                                'cmid_mm.downstream.PotsdamNoClutterDataset']]


def _cfg(scope, imports):
    return Config(dict(default_scope=scope, custom_imports=dict(imports=imports)))


@pytest.mark.parametrize('scope,imports,expected', [
    ('mmseg', ['cmid_mm'], ['cmid_mm.downstream.seg', 'cmid_mm.downstream.changedet']),
    ('mmdet', ['cmid_mm'], ['cmid_mm.downstream.det']),
    ('opencd', ['cmid_mm', 'opencd.models'], ['cmid_mm.downstream.changedet']),
    ('mmseg', ['cmid_mm.downstream.seg'], []),  # a current config: nothing to do
    ('mmseg', ['cmid_mm', 'cmid_mm.downstream.seg'], []),
    ('mmpretrain', ['cmid_mm'], []),  # pretraining / classification: core is all it needs
])
def test_old_downstream_configs_get_their_parts(scope, imports, expected):
    if expected:
        with pytest.warns(DeprecationWarning, match=r'list \[.*\] in custom_imports'):
            assert import_downstream_for_old_configs(_cfg(scope, imports)) == expected
    else:
        assert import_downstream_for_old_configs(_cfg(scope, imports)) == []


def test_an_old_segmentation_config_builds_its_dataset_in_a_fresh_process(tmp_path):
    """A pre-0.3 user config: `imports=['cmid_mm']` and a cmid_mm mmseg dataset type."""
    cfg = tmp_path / 'old.py'
    cfg.write_text("default_scope = 'mmseg'\n"
                   "custom_imports = dict(imports=['cmid_mm'], allow_failed_imports=False)\n")
    out = _fresh(f"""
        import json
        from mmengine.config import Config
        cfg = Config.fromfile({str(cfg)!r})  # imports cmid_mm: pretraining only
        from mmseg.registry import DATASETS
        before = DATASETS.get('PotsdamNoClutterDataset')
        from cmid_mm.engine.runner import import_downstream_for_old_configs
        import_downstream_for_old_configs(cfg)
        after = DATASETS.get('PotsdamNoClutterDataset')
        print(json.dumps([before is None, after.__module__]))
        """)
    assert out == [True, 'cmid_mm.downstream.seg.datasets']
