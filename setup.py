"""cmid_mm packaging.

Besides the ``cmid_mm`` Python package, an installed cmid_mm carries its configs, tools and
model index in ``cmid_mm/.mim/`` (as mmpretrain / mmseg / mmdet do), which is where OpenMMLab's
``mim`` and mmengine's ``_base_ = 'cmid_mm::...'`` look for them:

    cmid_mm/.mim/configs/          <- configs/ (with the per-folder metafile.yml)
    cmid_mm/.mim/tools/            <- tools/ (train.py, test.py, dist_*.sh, slurm_*.sh, ...)
    cmid_mm/.mim/model-index.yml   <- model-index.yml

* Wheel / non-editable ``pip install .``: ``build_py`` copies them into the build folder, so
  the source tree is never written to and the wheel holds real files.
* Editable install (``pip install -e .``, PEP 660 ``editable_wheel`` or legacy ``develop``):
  ``cmid_mm/.mim/`` is created in the checkout holding *symlinks* to ``configs/``, ``tools/``
  and ``model-index.yml`` (git-ignored), so edits to the configs are seen at once.

Dependencies: ``install_requires`` is what ``import cmid_mm`` (pretraining) needs besides torch
and mmcv. mmcv is not listed anywhere pip resolves by itself: mmcv 2.1.0 has no wheel for our
torch on PyPI, and pip would try an isolated sdist build that fails (no torch in the isolated
build env) or, at best, build mmcv *without* compiled ops. mmcv with ops (needed by
mmsegmentation / mmdetection / change detection) is built first by ``tools/setup_env.sh`` (or
taken from OpenMMLab's wheel index for CUDA torch builds: ``mim install mmcv==2.1.0``); the
pretraining-only stack works with mmcv without compiled ops (mmcv-lite, or mmcv built with
``MMCV_WITH_OPS=0``).
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))

# What goes into cmid_mm/.mim: (source in the checkout, name inside .mim).
MIM_ITEMS = [('configs', 'configs'), ('tools', 'tools'), ('model-index.yml', 'model-index.yml')]
# Development-machine scripts that make no sense inside an installed package.
MIM_TOOLS_EXCLUDE = {'setup_env.sh', 'install_test_services.sh'}
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def read_requirements(fname):
    """Requirement lines of ``requirements/<fname>`` (comments, blank lines and ``-r`` includes
    followed)."""
    path = osp.join(HERE, 'requirements', fname)
    reqs = []
    with open(path) as f:
        for ln in f:
            ln = ln.split('#')[0].strip()
            if not ln:
                continue
            if ln.startswith('-r '):
                reqs += read_requirements(ln[3:].strip())
            else:
                reqs.append(ln)
    return reqs


def get_version():
    ns = {}
    with open(osp.join(HERE, 'cmid_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), ns)
    return ns['__version__']


def _ignore_for(src_name):
    def ignore(folder, names):
        skipped = set(IGNORE(folder, names))
        if src_name == 'tools' and osp.abspath(folder) == osp.join(HERE, 'tools'):
            skipped |= MIM_TOOLS_EXCLUDE & set(names)
        return skipped
    return ignore


def copy_mim_files(mim_dir):
    """Real copies of configs/, tools/ and model-index.yml in ``mim_dir`` (wheel builds)."""
    if osp.lexists(mim_dir):
        shutil.rmtree(mim_dir) if osp.isdir(mim_dir) and not osp.islink(mim_dir) \
            else os.remove(mim_dir)
    os.makedirs(mim_dir)
    for src_name, dst_name in MIM_ITEMS:
        src = osp.join(HERE, src_name)
        if not osp.exists(src):
            raise FileNotFoundError(
                f'{src} is missing: cmid_mm/.mim/{dst_name} cannot be built. Build from a '
                'complete checkout or sdist (MANIFEST.in lists configs/, tools/ and '
                'model-index.yml).')
        dst = osp.join(mim_dir, dst_name)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=_ignore_for(src_name))
        else:
            shutil.copyfile(src, dst)


def link_mim_files(mim_dir):
    """``mim_dir`` holding relative symlinks to the checkout's files (editable installs)."""
    os.makedirs(mim_dir, exist_ok=True)
    for src_name, dst_name in MIM_ITEMS:
        src = osp.join(HERE, src_name)
        dst = osp.join(mim_dir, dst_name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        os.symlink(osp.relpath(src, mim_dir), dst)


class BuildPyWithMim(build_py):
    """build_py that also puts configs/tools/model-index.yml in ``cmid_mm/.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):  # setuptools >= 64, PEP 660 editable
            link_mim_files(osp.join(HERE, 'cmid_mm', '.mim'))
        else:
            copy_mim_files(osp.join(self.build_lib, 'cmid_mm', '.mim'))


# legacy `python setup.py develop` (pip with setuptools < 64) does not run build_py
if 'develop' in sys.argv:
    link_mim_files(osp.join(HERE, 'cmid_mm', '.mim'))

setup(
    name='cmid_mm',
    version=get_version(),
    description='CMID (Contrastive Mask Image Distillation) self-supervised pretraining for '
    'remote sensing, on mmpretrain / mmsegmentation / mmdetection',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'configs.*', 'tools', 'tools.*', 'tests',
                                    'tests.*', 'docs')),
    # the checkout's cmid_mm/.mim (symlinks of an editable install) never goes into a wheel:
    # build_py writes real copies instead
    exclude_package_data={'cmid_mm': ['.mim', '.mim/*']},
    include_package_data=True,
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.8',
    # Pretraining (`import cmid_mm`): torch + mmcv + mmengine + mmpretrain. mmcv is NOT listed
    # (see the module docstring: pip cannot build mmcv 2.1.0 with compiled ops by itself), nor
    # is torch (pick the build for your CUDA first). tools/setup_env.sh installs mmcv from a
    # locally built wheel, then requirements/mminstall.txt, then this package with --no-deps.
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        # downstream toolboxes; all of them need mmcv WITH compiled ops (not installable by pip
        # alone: tools/setup_env.sh builds it, or `mim install mmcv==2.1.0` on CUDA)
        'seg': read_requirements('seg.txt'),
        'det': read_requirements('det.txt'),
        # change detection: mmsegmentation (configs/changedet). open-cd (configs/opencd) is on
        # no package registry: CMID_OPENCD=/path/to/open-cd bash tools/setup_env.sh
        'cd': read_requirements('cd.txt'),
        # the name cmid_mm.downstream.changedet's import error suggests (same as 'cd')
        'changedet': read_requirements('cd.txt'),
        # every downstream toolbox (still without mmcv: see above)
        'all': sorted(set(read_requirements('seg.txt') + read_requirements('det.txt'))),
        # the `mim` command line (mim train / test / search)
        'mim': read_requirements('mim.txt'),
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
