"""projects/benchmarks/report_paths.py: what the benchmark and study reports record as paths."""
import os.path as osp
import sys
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
rp = load_tool('projects/benchmarks/report_paths.py')


def test_portable_paths(tmp_path):
    assert rp.REPO == REPO
    assert rp.portable(osp.join(REPO, 'data', 'rs_study')) == osp.join('data', 'rs_study')
    assert rp.portable(REPO) == '.'
    assert rp.portable(str(tmp_path / 'bench' / 'full')) == '<outside>/full'
    assert rp.portable(sys.executable) == 'python'
    assert rp.portable('work_dirs/study') == 'work_dirs/study'  # relative: unchanged
    # a sibling folder whose name starts like the repository's is outside it
    assert rp.portable(REPO + '_other/x') == '<outside>/x'


def test_portable_command_line(tmp_path):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), 'projects/benchmarks/configs/cmid.py',
           '--work-dir', osp.join(REPO, 'work_dirs', 'it45'), '--cfg-options',
           f'train_dataloader.dataset.data_root={REPO}/data/rs_study', 'train_cfg.max_iters=45',
           f'x={tmp_path}']
    assert rp.portable_args(cmd) == [
        'python', osp.join('tools', 'train.py'), 'projects/benchmarks/configs/cmid.py', '--work-dir',
        osp.join('work_dirs', 'it45'), '--cfg-options',
        f'train_dataloader.dataset.data_root={osp.join("data", "rs_study")}',
        'train_cfg.max_iters=45', f'x=<outside>/{tmp_path.name}']
