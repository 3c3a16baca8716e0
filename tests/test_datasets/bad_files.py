"""Shared helpers of the bad-input tests: folders with broken images, a log file to read."""
import os
import os.path as osp
import shutil

from mmengine.logging import MMLogger

from tests.utils import REPO

SAMPLE = osp.join(REPO, 'data', 'rs_sample', 'images')
PNG = osp.join(SAMPLE, 'l8_y0000_x0000.png')  # 128 x 128 RGB


def log_warnings_to(tmp_path):
    """WARNING and above of the current MMLogger also go to ``tmp_path/skip.log``."""
    log = tmp_path / 'skip.log'
    MMLogger.get_instance(f'bad_inputs_{tmp_path.name}', log_file=str(log),
                          log_level='WARNING')
    return log


def folder_with_bad_files(tmp_path, n_bad=1, n_good=3, name='imgs'):
    """``tmp_path/name`` with ``n_bad`` truncated PNGs (sorted first) and ``n_good`` sample
    images of data/rs_sample."""
    d = tmp_path / name
    d.mkdir(parents=True)
    raw = open(PNG, 'rb').read()
    for i in range(n_bad):  # named to sort first: index 0..n_bad-1
        (d / f'a_bad{i}.png').write_bytes(raw[:4000])
    for f in sorted(os.listdir(SAMPLE))[:n_good]:
        shutil.copy(osp.join(SAMPLE, f), d / f'b_{f}')
    return d
