import os.path as osp

from setuptools import find_packages, setup


def read_requirements(fname):
    """Requirement lines of ``requirements/<fname>`` (comments and blank lines dropped)."""
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    with open(path) as f:
        return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'cmid_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), ns)
    return ns['__version__']


setup(
    name='cmid_mm',
    version=get_version(),
    description='CMID (Contrastive Mask Image Distillation) self-supervised pretraining for '
    'remote sensing, on mmpretrain / mmsegmentation / mmdetection',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    python_requires='>=3.8',
    # The OpenMMLab stack (requirements/mminstall.txt) is deliberately NOT listed here: mmcv
    # must be built with compiled ops first (tools/setup_env.sh), and listing it would make
    # pip attempt an isolated sdist build that fails.
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
        'mim': read_requirements('mminstall.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
