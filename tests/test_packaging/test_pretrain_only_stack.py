"""`import cmid_mm` needs only the pretraining stack (torch, mmcv without compiled ops, mmengine,
mmpretrain), checked in a real virtualenv that lacks mmsegmentation, mmdetection, open-cd and
mmcv's compiled ops.

The venv is built from the test environment's own site-packages without copying anything: every
entry is symlinked except the downstream toolboxes (package and dist-info), and mmcv becomes a
folder of symlinks to every file but its compiled extension ``_ext*.so``. Inside it: import
cmid_mm, build the three pretraining recipes, run one demo training iteration with
tools/train.py, and check that each downstream part refuses to import with a message that names
the missing toolbox and the fix.
"""
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import textwrap

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
# top-level names (packages, modules, dist-info prefixes) of the downstream toolboxes
HIDDEN = ('mmseg', 'mmsegmentation', 'mmdet', 'opencd', 'open_cd')


def _hidden(entry: str) -> bool:
    stem = entry.split('-')[0].split('.')[0].lower()
    return stem in HIDDEN


@pytest.fixture(scope='module')
def pretrain_only_python(tmp_path_factory):
    site = sysconfig.get_paths()['purelib']
    if not osp.isdir(osp.join(site, 'mmcv')):
        pytest.skip(f'mmcv is not in {site} (not a venv made by tools/setup_env.sh)')
    root = tmp_path_factory.mktemp('pretrain_only')
    venv = root / 'venv'
    base = getattr(sys, '_base_executable', sys.executable)
    subprocess.run([base, '-m', 'venv', '--without-pip', str(venv)], check=True)
    py = venv / 'bin' / 'python'
    new_site = subprocess.run(
        [str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()
    hidden = []
    for entry in sorted(os.listdir(site)):
        src, dst = osp.join(site, entry), osp.join(new_site, entry)
        if osp.lexists(dst):
            continue
        if _hidden(entry):
            hidden.append(entry)
        elif entry == 'mmcv':
            os.mkdir(dst)
            for sub in os.listdir(src):
                if sub.startswith('_ext'):
                    hidden.append(f'mmcv/{sub}')
                else:
                    os.symlink(osp.join(src, sub), osp.join(dst, sub))
        else:
            os.symlink(src, dst)
    assert any(h.startswith('mmcv/_ext') for h in hidden), hidden  # the ops were there to hide
    assert any(h.startswith('mmseg') for h in hidden), hidden
    assert any(h.startswith('mmdet') for h in hidden), hidden
    return py


def _run(py, code, cwd=REPO, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONWARNINGS='ignore')
    env.pop('PYTHONPATH', None)
    return subprocess.run([str(py), '-c', textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_core_import_and_recipes_without_downstream_toolboxes(pretrain_only_python):
    proc = _run(pretrain_only_python, """
        import importlib.util, sys
        for name in ('mmseg', 'mmdet', 'opencd'):
            assert importlib.util.find_spec(name) is None, name
        try:
            import mmcv.ops  # noqa: F401
        except ImportError:
            pass
        else:
            raise AssertionError('mmcv.ops imported: the compiled ops were not hidden')
        import cmid_mm
        from mmengine.config import Config
        from mmpretrain.registry import MODELS
        from mmengine.registry import init_default_scope
        init_default_scope('mmpretrain')
        for name in ('cmid_resnet50_pretrain', 'cmid_swin_pretrain', 'cmid_vit-base-p16_pretrain'):
            cfg = Config.fromfile(f'configs/{name}.py')
            model = MODELS.build(cfg.model)
            print(name, type(model).__name__, type(model.backbone).__name__)
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmseg', 'mmdet', 'opencd')
                        or m.startswith('cmid_mm.downstream.'))
        print('downstream modules loaded:', loaded)
        """)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'cmid_resnet50_pretrain CMID CMIDResNet' in proc.stdout
    assert 'cmid_swin_pretrain CMID CMIDSwinTransformer' in proc.stdout
    assert 'cmid_vit-base-p16_pretrain CMID CMIDVisionTransformer' in proc.stdout
    assert 'downstream modules loaded: []' in proc.stdout


@pytest.mark.parametrize('part,toolbox', [('seg', 'mmsegmentation'), ('det', 'mmdet'),
                                          ('changedet', 'mmsegmentation')])
def test_downstream_part_names_its_missing_toolbox(pretrain_only_python, part, toolbox):
    proc = _run(pretrain_only_python, f'import cmid_mm.downstream.{part}')
    assert proc.returncode != 0
    assert f'cmid_mm.downstream.{part}: unsupported OpenMMLab stack' in proc.stderr
    assert f'{toolbox} is not installed' in proc.stderr
    assert f"pip install 'cmid_mm[{part}]'" in proc.stderr


def test_demo_trains_one_iteration_without_downstream_toolboxes(pretrain_only_python, tmp_path):
    cmd = f"""
        import runpy, sys
        sys.argv = ['tools/train.py', 'configs/cmid_demo_resnet18_rs-sample.py',
                    '--work-dir', {str(tmp_path)!r}, '--cfg-options',
                    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                    'train_dataloader.dataset.indices=4', 'train_cfg.max_epochs=1',
                    'default_hooks.logger.interval=1']
        runpy.run_path('tools/train.py', run_name='__main__')
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmseg', 'mmdet'))
        print('toolboxes loaded:', loaded)
        """
    proc = _run(pretrain_only_python, cmd, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    assert 'toolboxes loaded: []' in proc.stdout
