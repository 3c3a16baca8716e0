"""Data problems reported before training instead of late or unclearly (issue 11, item 6):
symbolic links in the image folder that point nowhere or in a loop, a dataset smaller than one
batch, and a short last batch that the CMID queue cannot take.

Real folders of real images (data/rs_sample) with real links, and real runs of the demo config
(mmengine's Runner, the demo model) on a handful of images.
"""
import errno
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.datasets import CustomDataset

import cmid_mm  # noqa: F401  (registers everything)
from cmid_mm.datasets import RSImageFolder
from cmid_mm.engine.hooks.train_batch_check_hook import check_train_batches
from cmid_mm.models.heads import QueueContrastiveHead

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SAMPLE = osp.join(REPO, 'data', 'rs_sample', 'images')
DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
IMAGES = sorted(os.listdir(SAMPLE))


def _images(folder, n, start=0):
    os.makedirs(folder, exist_ok=True)
    for f in IMAGES[start:start + n]:
        shutil.copy(osp.join(SAMPLE, f), osp.join(folder, f))


def _log_to(tmp_path):
    log = tmp_path / 'warnings.log'
    MMLogger.get_instance(f'links_{tmp_path.name}', log_file=str(log), log_level='WARNING')
    return log


def _skip_pipeline():
    return [dict(type='LoadRSImageFromFile', on_error='skip')]


# --------------------------------------------------------------------- links
@pytest.fixture
def linked_folder(tmp_path):
    """3 images at the top, 2 in sub/, a hidden file, a link to an image and a link to a folder
    (both followed, as mmengine does), and 3 dangling links: an image, a folder (no extension)
    and a .txt file (not an image: not reported)."""
    root = tmp_path / 'data'
    _images(str(root), 3)
    _images(str(root / 'sub'), 2, start=3)
    _images(str(tmp_path / 'elsewhere'), 2, start=5)
    (root / '.hidden.png').write_bytes(b'x')
    os.symlink(osp.join(SAMPLE, IMAGES[7]), root / 'linked.png')
    os.symlink(tmp_path / 'elsewhere', root / 'linked_dir')
    os.symlink(tmp_path / 'moved' / 'scene.png', root / 'sub' / 'gone.png')
    os.symlink(tmp_path / 'unmounted' / 'tiles', root / 'tiles')
    os.symlink(tmp_path / 'moved' / 'notes.txt', root / 'notes.txt')
    return root


def test_dangling_links_stop_with_each_link_and_its_target(linked_folder, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(linked_folder), pipeline=[])
    msg = str(info.value)
    assert f"2 symbolic link(s) under '{linked_folder}' point to nothing" in msg
    assert f"{linked_folder / 'sub' / 'gone.png'} -> {tmp_path / 'moved' / 'scene.png'}" in msg
    assert f"{linked_folder / 'tiles'} -> {tmp_path / 'unmounted' / 'tiles'}" in msg
    assert 'notes.txt' not in msg  # would not have been an image either
    assert "on_error='skip'" in msg  # how to go on without them
    # the same in raise mode of the loader (the default)
    with pytest.raises(FileNotFoundError, match='point to nothing'):
        RSImageFolder(data_root=str(linked_folder), pipeline=[dict(type='LoadRSImageFromFile')])


def test_dangling_links_in_skip_mode_warn_and_list_as_mmengine(linked_folder, tmp_path):
    log = _log_to(tmp_path)
    ds = RSImageFolder(data_root=str(linked_folder), pipeline=_skip_pipeline(),
                       serialize_data=False)
    text = log.read_text()
    assert '2 symbolic link(s)' in text and "on_error='skip'" in text
    assert f"{linked_folder / 'sub' / 'gone.png'} -> {tmp_path / 'moved' / 'scene.png'}" in text
    assert f"{linked_folder / 'tiles'} -> " in text
    # otherwise the same list as mmpretrain's: the links to a file and a folder followed,
    # the hidden file left out
    ref = CustomDataset(data_root=str(linked_folder), with_label=False, pipeline=[],
                        extensions=ds.extensions, serialize_data=False)
    paths = [d['img_path'] for d in ds.data_list]
    assert paths == [d['img_path'] for d in ref.data_list]
    assert len(paths) == 3 + 2 + 1 + 2
    assert str(linked_folder / 'linked_dir' / IMAGES[5]) in paths


def test_folder_link_to_its_parent_is_a_clear_loop_error(tmp_path):
    root = tmp_path / 'data'
    _images(str(root / 'sub'), 2)
    os.symlink('..', root / 'sub' / 'back')
    with pytest.raises(OSError) as info:
        RSImageFolder(data_root=str(root), pipeline=[])
    assert info.value.errno == errno.ELOOP
    msg = str(info.value)
    assert (f"RSImageFolder: the symbolic link '{root / 'sub' / 'back'}' (-> '..') is the "
            f"folder '{root}', which contains it") in msg
    assert 'Remove the link' in msg


def test_links_pointing_at_each_other_are_a_clear_loop_error(tmp_path):
    root = tmp_path / 'data'
    _images(str(root), 2)
    os.symlink('b.png', root / 'a.png')
    os.symlink('a.png', root / 'b.png')
    with pytest.raises(OSError) as info:
        RSImageFolder(data_root=str(root), pipeline=[])
    assert info.value.errno == errno.ELOOP
    assert f"the symbolic link '{root / 'a.png'}' (-> 'b.png') is part of a loop" in \
        str(info.value)


# --------------------------------------------------------------------- batches
def _demo_cfg(tmp_path, n_images, batch_size, drop_last, **extra):
    data = tmp_path / 'data'
    _images(str(data / 'images'), n_images)
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'batches_{tmp_path.name}'
    cfg.train_dataloader.dataset.data_root = str(data)
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.drop_last = drop_last
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.sampler.shuffle = False
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.merge_from_dict(extra)
    return cfg


def _train_and_fail(cfg):
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as info:
        runner.train()
    assert runner.iter == 0  # not one iteration
    assert not [f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')]
    return str(info.value)


def test_short_last_batch_the_queue_cannot_take_stops_before_the_first_iteration(tmp_path):
    """7 images, batch 4, drop_last=False: batches of 4 and 3; the demo queue (1024) cannot take
    3 keys at once. Before: one iteration ran, then the enqueue failed (every epoch lost)."""
    msg = _train_and_fail(_demo_cfg(tmp_path, 7, 4, False))
    images = tmp_path / 'data' / 'images'
    assert msg.startswith(f"train_dataloader: the dataset RSImageFolder (images under "
                          f"'{images}') has 7 samples (7 in the only process)")
    assert 'batch_size=4 per process x 1 process(es) (world size) and drop_last=False' in msg
    assert 'the last batch of every epoch has 3 sample(s) per process (7 = 1 x 4 + 3)' in msg
    assert 'model.global_head (queue_len=1024) would take 3 keys at once' in msg
    assert 'Set train_dataloader.drop_last=True' in msg and 'a multiple of 4' in msg


def test_short_last_batch_the_queue_can_take_trains(tmp_path):
    """6 images, batch 4: a last batch of 2, and 1024 is a multiple of 2: the run is valid and
    trains its 2 iterations (the check is the queue's exact requirement, no stricter)."""
    cfg = _demo_cfg(tmp_path, 6, 4, False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2


def test_dataset_smaller_than_a_batch_is_named_before_training(tmp_path):
    """5 images, batch 16 (the demo's), drop_last=True: no batch in an epoch. Before: mmengine's
    'epoch_length must be a positive integer, but got 0' (its LR schedule is iteration-based
    and built before any hook runs: the runner / train script calls the check first)."""
    cfg = _demo_cfg(tmp_path, 5, 16, True)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as info:
        check_train_batches(runner.train_dataloader, runner.model)
    msg = str(info.value)
    assert msg.startswith('train_dataloader: the dataset RSImageFolder (images under ')
    assert 'has 5 samples (5 in the only process)' in msg
    assert 'with batch_size=16 per process x 1 process(es) (world size) and drop_last=True ' \
           'an epoch has no batch' in msg
    assert 'Use at least 16 images' in msg and 'train_dataloader.batch_size=5' in msg


def test_dataset_smaller_than_a_batch_stops_in_the_hook_with_an_epoch_schedule(tmp_path):
    """With a per-epoch LR schedule mmengine raises nothing: before, the run 'trained' an empty
    epoch and saved its checkpoint. The hook stops it before the first iteration."""
    cfg = _demo_cfg(tmp_path, 5, 16, True)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0,
                                end=1)]
    msg = _train_and_fail(cfg)
    assert 'has 5 samples' in msg and 'an epoch has no batch' in msg


def test_queue_not_a_multiple_of_the_batch_is_named_before_training(tmp_path):
    _images(str(tmp_path / 'imgs'), 8)
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=4, drop_last=True, num_workers=0, sampler=dict(type='DefaultSampler'),
        dataset=dict(type='RSImageFolder', data_root=str(tmp_path / 'imgs'), pipeline=[])))
    model = torch.nn.ModuleDict(dict(global_head=QueueContrastiveHead(feat_dim=8,
                                                                      queue_len=1022)))
    with pytest.raises(ValueError) as info:
        check_train_batches(loader, model)
    assert str(info.value).startswith(
        'model.global_head.queue_len=1022 is not a multiple of the keys it takes per iteration: '
        '4 = batch_size 4 x world size 1.')
    assert 'divisible by 4 (e.g. 1020)' in str(info.value)
    model.global_head = QueueContrastiveHead(feat_dim=8, queue_len=1024)
    check_train_batches(loader, model)  # 2 full batches of 4 per epoch: nothing to say


# --------------------------------------------------------------------- two processes
DIST_WORKER = r'''
import json, os, sys
import torch.distributed as dist
from mmengine.dist import get_rank
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
import cmid_mm  # noqa: F401
from cmid_mm.engine.hooks.train_batch_check_hook import check_train_batches
from cmid_mm.models.heads import QueueContrastiveHead

dist.init_process_group('gloo')
init_default_scope('mmpretrain')
out = {}
for name, n, batch, drop_last, round_up in json.loads(sys.argv[2]):
    loader = Runner.build_dataloader(dict(
        batch_size=batch, drop_last=drop_last, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=round_up),
        dataset=dict(type='RSImageFolder', data_root=sys.argv[1], pipeline=[], indices=n)))
    try:
        check_train_batches(loader, QueueContrastiveHead(feat_dim=8, queue_len=64))
        out[name] = None
    except ValueError as e:
        out[name] = str(e)
json.dump(out, open(os.path.join(sys.argv[3], f'rank{get_rank()}.json'), 'w'))
dist.destroy_process_group()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason='runs two CPU processes (gloo)')
def test_two_processes_count_per_process_batches(tmp_path):
    _images(str(tmp_path / 'imgs'), 13)
    (tmp_path / 'worker.py').write_text(DIST_WORKER)
    cases = [
        ('ok', 10, 4, False, True),  # 5 per process: batches 4 + 1, 2 keys: 64 % 2 == 0
        ('short', 13, 4, False, True),  # 7 per process: 4 + 3, 6 keys at once
        ('empty', 5, 4, True, True),  # 3 per process: no batch of 4
        ('uneven', 9, 4, False, False),  # 5 and 4 per process: 2 and 1 iterations
    ]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', '--master_addr=127.0.0.1',
           str(tmp_path / 'worker.py'), str(tmp_path / 'imgs'), json.dumps(cases),
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    assert outs[0] == outs[1]  # every process stops with the same message
    out = outs[0]
    assert out['ok'] is None
    assert 'has 13 samples (7 per process with 2 processes)' in out['short']
    assert 'batch_size=4 per process x 2 process(es)' in out['short']
    assert 'would take 6 keys at once, and 64 is not a multiple of 6' in out['short']
    assert 'has 5 samples (3 per process with 2 processes)' in out['empty']
    assert 'Use at least 8 images (batch_size x world size)' in out['empty']
    assert 'split [5, 4] over the 2 processes' in out['uneven']
    assert 'run [2, 1] iterations per epoch' in out['uneven']
