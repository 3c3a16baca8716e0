"""cmid_mm as an installed package, used from a folder outside the checkout.

Once per module: an sdist of the checkout (so MANIFEST.in is exercised), a wheel built from it
(``pip wheel --no-deps --no-build-isolation``), and a fresh venv with the wheel installed. The
venv reuses the test environment's installed stack (torch, mmcv, mmengine, mmpretrain, ...,
openmim) through a ``.pth`` line naming that site-packages folder: a plain path line adds the
folder to ``sys.path`` without running the ``.pth`` files in it, so an editable cmid_mm of the
test environment (whose import hook lives in such a ``.pth``) stays invisible, and the venv's
own site-packages, holding the wheel's cmid_mm, comes first. Every command runs in a temporary
folder outside the checkout, without PYTHONPATH.

Checked there: ``import cmid_mm`` is the installed copy; configs, tools and model-index.yml are
real files in ``cmid_mm/.mim``; ``mim search cmid_mm`` lists every metafile entry;
``mim train cmid_mm cmid_demo_resnet18_rs-sample.py`` runs one iteration; a user's config with
``_base_ = 'cmid_mm::cmid_swin_pretrain.py'`` (and a downstream ``cmid_mm::`` base) loads;
``mim test cmid_mm cmid_r50_ft_ucm.py`` evaluates a checkpoint; the wheel's metadata requires
the pretraining stack only and offers the downstream extras; and, where the test Slurm cluster
can run (tests/**/slurm_cluster.py), ``mim train ... --launcher slurm`` runs a 2-rank job.
No network: pip installs only the local wheel (``--no-index``). About 70 s (+30 s with Slurm).
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile

import pytest
import yaml
from packaging.version import Version

pytest.importorskip('mim', reason='openmim is not installed (pip install -r requirements/mim.txt)')

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SCENE = osp.join(REPO, 'tests', 'data', 'scene_tiny')
RS_SAMPLE = osp.join(REPO, 'data', 'rs_sample', 'images')
TIMEOUT = 300


def _run(cmd, cwd, env, timeout=TIMEOUT):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    log = f'$ {" ".join(cmd)}\nexit {proc.returncode}\n{proc.stdout[-4000:]}\n' \
          f'{proc.stderr[-4000:]}'
    return proc, log


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(python of the fresh venv, env for it, a working folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp('packaging')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1', PIP_DISABLE_PIP_VERSION_CHECK='1',
               PIP_NO_INPUT='1')
    # sdist (egg-info into tmp, not the checkout), then a wheel from the unpacked sdist
    sdist_dir = tmp / 'sdist'
    sdist_dir.mkdir()
    proc, log = _run([sys.executable, osp.join(REPO, 'setup.py'), '-q', 'egg_info',
                      '--egg-base', str(sdist_dir), 'sdist', '-d', str(sdist_dir)],
                     cwd=REPO, env=env)
    assert proc.returncode == 0, log
    (archive, ) = glob.glob(str(sdist_dir / 'cmid_mm-*.tar.gz'))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp / 'src', filter='data')
    (src, ) = glob.glob(str(tmp / 'src' / 'cmid_mm-*'))
    proc, log = _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                      '--no-index', '-w', str(tmp / 'wheel'), src], cwd=str(tmp), env=env)
    assert proc.returncode == 0, log
    (wheel, ) = glob.glob(str(tmp / 'wheel' / 'cmid_mm-*.whl'))

    venv = tmp / 'venv'
    proc, log = _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=str(tmp),
                     env=env)
    assert proc.returncode == 0, log
    python = str(venv / 'bin' / 'python')
    venv_site = subprocess.check_output(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        text=True, env=env).strip()
    stack_site = sysconfig.get_paths()['purelib']  # the test environment's installed stack
    with open(osp.join(venv_site, '_cmid_test_stack.pth'), 'w') as f:
        f.write(stack_site + '\n')
    proc, log = _run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps',
                      '--no-index', wheel], cwd=str(tmp), env=env)
    assert proc.returncode == 0, log
    outside = tmp / 'user_project'
    outside.mkdir()
    return python, env, outside, venv_site, wheel


@pytest.fixture(scope='module')
def probe(installed):
    """One process in the venv: where cmid_mm comes from, two user configs inheriting through
    ``cmid_mm::``, and a classifier checkpoint for the ``mim test`` check."""
    python, env, outside, _, _ = installed
    (outside / 'my_pretrain.py').write_text(textwrap.dedent("""\
        _base_ = 'cmid_mm::cmid_swin_pretrain.py'
        train_dataloader = dict(batch_size=7)
        """))
    (outside / 'my_seg.py').write_text(
        "_base_ = ['cmid_mm::segmentation/upernet_cmid-r50_4xb4-50e_potsdam-512x512.py']\n")
    script = textwrap.dedent("""\
        import json, sys
        import torch
        import cmid_mm
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        out = {'file': cmid_mm.__file__}
        c = Config.fromfile('my_pretrain.py')
        out['pretrain'] = [c.model.type, c.model.backbone.type, c.train_dataloader.batch_size,
                           c.default_scope, '_scope_' in c.model]
        s = Config.fromfile('my_seg.py')
        out['seg'] = [s.model.type, s.model.backbone.type, s.model.backbone.depth,
                      s.default_scope]
        try:
            Config.fromfile('my_missing.py')
        except FileNotFoundError as e:
            out['missing'] = str(e)
        # a ResNet-18 scene classifier (the UC Merced config, shrunk) for `mim test`
        from mmpretrain.registry import MODELS
        init_default_scope('mmpretrain')
        cls = Config.fromfile('my_cls.py')
        torch.manual_seed(0)
        model = MODELS.build(cls.model)
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, 'cls.pth')
        print('PROBE ' + json.dumps(out))
        """)
    (outside / 'my_missing.py').write_text("_base_ = 'cmid_mm::no_such_config.py'\n")
    (outside / 'my_cls.py').write_text(textwrap.dedent("""\
        _base_ = 'cmid_mm::classification/cmid_r50_ft_ucm.py'
        model = dict(backbone=dict(depth=18, init_cfg=None),
                     head=dict(in_channels=512, num_classes=2))
        """))
    proc, log = _run([python, '-c', script], cwd=str(outside), env=env)
    assert proc.returncode == 0, log
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('PROBE ')][-1]
    return json.loads(line[len('PROBE '):])


def test_import_is_the_installed_copy_with_configs_and_tools(installed, probe):
    _, _, outside, venv_site, wheel = installed
    assert probe['file'] == osp.join(venv_site, 'cmid_mm', '__init__.py')
    mim_dir = osp.join(venv_site, 'cmid_mm', '.mim')
    for rel in ('configs/cmid_swin_pretrain.py', 'configs/cmid_demo_resnet18_rs-sample.py',
                'configs/_base_/default_runtime.py', 'configs/metafile.yml',
                'tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
                'tools/slurm_train.sh', 'tools/model_converters/export_cmid.py',
                'model-index.yml'):
        path = osp.join(mim_dir, rel)
        assert osp.isfile(path) and not osp.islink(path), rel
        with open(path, 'rb') as a, open(osp.join(REPO, rel), 'rb') as b:
            assert a.read() == b.read(), f'{rel} differs from the checkout'
    # development-machine scripts stay in the checkout
    assert not osp.exists(osp.join(mim_dir, 'tools', 'setup_env.sh'))
    # the wheel holds real files only (no editable-install symlinks, no byte code)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
        assert not [i.filename for i in zf.infolist() if (i.external_attr >> 28) == 0o12]
        assert 'cmid_mm/.mim/tools/train.py' in names


def test_wheel_requires_the_pretraining_stack_and_offers_downstream_extras(installed):
    from packaging.requirements import Requirement

    from cmid_mm.utils.version_guard import CORE, DOWNSTREAM, SUPPORTED
    wheel = installed[4]
    with zipfile.ZipFile(wheel) as zf:
        (meta, ) = [n for n in zf.namelist() if n.endswith('.dist-info/METADATA')]
        lines = zf.read(meta).decode().splitlines()
    extras = {ln.split(':', 1)[1].strip() for ln in lines if ln.startswith('Provides-Extra:')}
    reqs = [Requirement(ln.split(':', 1)[1].strip()) for ln in lines
            if ln.startswith('Requires-Dist:')]
    base = {r.name: r for r in reqs if r.marker is None}
    by_extra = {}
    for r in reqs:
        if r.marker is not None:
            for extra in extras:
                if r.marker.evaluate({'extra': extra}):
                    by_extra.setdefault(extra, {})[r.name] = r
    # `pip install cmid_mm` = the pretraining stack except mmcv (pip cannot build it with ops)
    assert {'mmengine', 'mmpretrain'} <= set(base), base
    assert not {'mmcv', 'mmsegmentation', 'mmdet', 'torch'} & set(base), base
    assert 'mmcv' not in {n for e in by_extra.values() for n in e}
    # every downstream part's import error suggests `pip install 'cmid_mm[PART]'`: it exists
    # and pins a version the import check accepts
    assert {'seg', 'det', 'cd', 'changedet', 'mim', 'tests'} <= extras, extras
    for part, dists in DOWNSTREAM.items():
        for dist in dists:
            lo, hi = SUPPORTED[dist]
            (pin, ) = [s.version for s in by_extra[part][dist].specifier if s.operator == '==']
            assert Version(lo) <= Version(pin) < Version(hi), (part, dist, pin)
    for dist in set(CORE) - {'mmcv'}:
        lo, hi = SUPPORTED[dist]
        (pin, ) = [s.version for s in base[dist].specifier if s.operator == '==']
        assert Version(lo) <= Version(pin) < Version(hi), (dist, pin)
    assert {'ftfy', 'regex'} <= set(by_extra['seg']) and 'mmdet' in by_extra['det']
    assert by_extra['cd'].keys() == by_extra['changedet'].keys() == by_extra['seg'].keys()
    assert 'openmim' in by_extra['mim']


def test_package_base_configs_load_from_a_user_project(probe):
    # the recipe's model, the user's override, no `_scope_` injected into inherited dicts
    assert probe['pretrain'] == ['CMID', 'CMIDSwinTransformer', 7, 'mmpretrain', False]
    assert probe['seg'] == ['EncoderDecoder', 'ResNet', 50, 'mmseg']
    assert "'cmid_mm::no_such_config.py': no config 'no_such_config.py'" in probe['missing']


def test_mim_search_lists_every_metafile_entry(installed):
    python, env, outside, _, _ = installed
    proc, log = _run([python, '-m', 'mim', 'search', 'cmid_mm', '--valid-config'],
                     cwd=str(outside), env=env)
    assert proc.returncode == 0, log
    with open(osp.join(REPO, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    names = set()
    for meta in metafiles:
        with open(osp.join(REPO, meta)) as f:
            names |= {m['Name'] for m in yaml.safe_load(f)['Models']}
    listed = proc.stdout.split('valid config ids:', 1)[1]
    assert names and all(f"'{n}'" in listed for n in names), log
    proc, log = _run([python, '-m', 'mim', 'search', 'cmid_mm', '--config',
                      'cmid_swin_pretrain'], cwd=str(outside), env=env)
    assert proc.returncode == 0, log
    assert 'task' in proc.stdout and 'self-supervised pretraining' in proc.stdout, log
    assert 'millionaid' in proc.stdout and 'swin-b' in proc.stdout, log


def test_mim_train_runs_the_demo_by_name_from_outside(installed, tmp_path):
    python, env, outside, venv_site, _ = installed
    images = tmp_path / 'rs' / 'images'
    images.mkdir(parents=True)
    for name in sorted(os.listdir(RS_SAMPLE))[:2]:  # 2 real 128 px RGB crops: one batch
        shutil.copy(osp.join(RS_SAMPLE, name), images)
    work_dir = tmp_path / 'work'
    proc, log = _run([python, '-m', 'mim', 'train', 'cmid_mm', 'cmid_demo_resnet18_rs-sample.py',
                      '--work-dir', str(work_dir), '--cfg-options',
                      f'train_dataloader.dataset.data_root={tmp_path / "rs"}',
                      'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                      'train_cfg.max_epochs=1'], cwd=str(outside), env=env)
    assert proc.returncode == 0, log
    config = osp.join(venv_site, 'cmid_mm', '.mim', 'configs',
                      'cmid_demo_resnet18_rs-sample.py')
    train_py = osp.join(venv_site, 'cmid_mm', '.mim', 'tools', 'train.py')
    assert f'{train_py} {config} --launcher none' in proc.stdout, log
    assert 'Epoch(train) [1][1/1]' in proc.stdout + proc.stderr, log
    assert 'Epoch(train) [1][2/' not in proc.stdout + proc.stderr, log
    assert (work_dir / 'epoch_1.pth').is_file(), log


def test_mim_test_evaluates_a_downstream_config_by_name(installed, probe, tmp_path):
    python, env, outside, venv_site, _ = installed
    ckpt = outside / 'cls.pth'
    assert ckpt.is_file()
    opts = ['model.backbone.depth=18', 'model.head.in_channels=512', 'model.head.num_classes=2',
            'data_preprocessor.num_classes=2', f'test_dataloader.dataset.data_root={SCENE}',
            'test_dataloader.dataset.data_prefix=val', 'test_dataloader.dataset.ann_file=',
            'test_dataloader.dataset.pipeline.1.scale=73',
            'test_dataloader.dataset.pipeline.2.crop_size=64', 'test_dataloader.batch_size=20',
            'test_dataloader.num_workers=0', 'test_evaluator.topk=(1,)']
    proc, log = _run([python, '-m', 'mim', 'test', 'cmid_mm', 'cmid_r50_ft_ucm.py',
                      '--checkpoint', str(ckpt), '--work-dir', str(tmp_path / 'work'),
                      '--cfg-options', *opts], cwd=str(outside), env=env)
    assert proc.returncode == 0, log
    test_py = osp.join(venv_site, 'cmid_mm', '.mim', 'tools', 'test.py')
    assert test_py in proc.stdout, log
    out = proc.stdout + proc.stderr
    assert f'Load checkpoint from {ckpt}' in out, log
    # 20 validation images of 2 classes: top-1 is a multiple of 5 %
    top1 = float(out.split("'accuracy/top1': ", 1)[1].split('}', 1)[0])
    assert 0 <= top1 <= 100 and top1 % 5 == 0, log


def _slurm_cluster_module():
    """tests/**/slurm_cluster.py (the one-node Slurm cluster on loopback), or None."""
    found = sorted(glob.glob(osp.join(REPO, 'tests', '**', 'slurm_cluster.py'), recursive=True))
    if not found:
        return None
    spec = importlib.util.spec_from_file_location('_cmid_slurm_cluster', found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mim_train_slurm_launcher_runs_our_train_py_on_two_ranks(installed, tmp_path):
    """``mim train cmid_mm CONFIG --launcher slurm`` does not call tools/slurm_train.sh: mim
    runs ``srun -p P --gres=gpu:G --ntasks=N ... python -u .mim/tools/train.py CONFIG
    --launcher slurm`` itself. Our train.py must then run as a real 2-rank job."""
    cluster_mod = _slurm_cluster_module()
    if cluster_mod is None:
        pytest.skip('no tests/**/slurm_cluster.py (the test Slurm cluster helper)')
    reason = cluster_mod.unavailable_reason()
    if reason:
        pytest.skip(reason)
    python, env, outside, venv_site, _ = installed
    images = tmp_path / 'rs' / 'images'
    images.mkdir(parents=True)
    for name in sorted(os.listdir(RS_SAMPLE))[:4]:  # 2 ranks x batch 2: one step
        shutil.copy(osp.join(RS_SAMPLE, name), images)
    work_dir = tmp_path / 'work'
    with cluster_mod.SlurmCluster() as cluster:
        job_env = dict(cluster.env, **{k: env[k] for k in ('PYTHONWARNINGS', 'OMP_NUM_THREADS')})
        job_env.pop('PYTHONPATH', None)
        # mmengine's slurm init takes the node's name as master: stay on loopback
        job_env['MASTER_ADDR'] = '127.0.0.1'
        proc, log = _run([python, '-m', 'mim', 'train', 'cmid_mm',
                          'cmid_demo_resnet18_rs-sample.py', '--launcher', 'slurm',
                          '--gpus', '2', '--gpus-per-node', '2', '--partition',
                          cluster.partition, '--cpus-per-task', '1',
                          '--port', str(cluster_mod.free_port()), '--srun-args', '--label',
                          '--work-dir', str(work_dir), '--cfg-options',
                          f'train_dataloader.dataset.data_root={tmp_path / "rs"}',
                          'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                          'train_cfg.max_epochs=1'], cwd=str(outside), env=job_env)
        log = log + '\n' + cluster.logs()
        jobs = cluster.client('scontrol', 'show', 'job', '-o').stdout
    assert proc.returncode == 0, log
    train_py = osp.join(venv_site, 'cmid_mm', '.mim', 'tools', 'train.py')
    assert 'Training command is srun -p debug --gres=gpu:2 --ntasks=2 --ntasks-per-node=2' \
        in proc.stdout, log
    assert f'python -u {train_py} ' in proc.stdout and '--launcher slurm' in proc.stdout, log
    assert 'slurm_train.sh' not in proc.stdout, log
    out = proc.stdout + proc.stderr
    # Slurm ran one job step of 2 tasks under mim's job name (rank 1 logs nothing itself)
    job = [dict(f.split('=', 1) for f in line.split() if '=' in f) for line in jobs.splitlines()]
    job = [j for j in job if j.get('JobName') == 'cmid_demo_resnet18_rs-sample_train']
    assert len(job) == 1 and job[0]['NumTasks'] == '2', jobs
    rank0 = [ln[3:] for ln in out.splitlines() if ln.startswith('0: ')]
    assert rank0, log
    log0 = '\n'.join(rank0)
    assert 'Distributed launcher: slurm' in log0 and 'GPU number: 2' in log0, log
    # 4 images / (2 ranks x batch 2): one step (a lone rank would make 2)
    assert 'Epoch(train) [1][1/1]' in log0 and 'Epoch(train) [1][2/' not in log0, log
    assert (work_dir / 'epoch_1.pth').is_file(), log
