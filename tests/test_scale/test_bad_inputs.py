"""Bad input gives a clear error that names the file / key / value and what to do (issue 4).

Real files throughout: truncated copies of the embedded RS sample PNGs, grey / RGBA / 16-bit
PNGs and 13-band TIFFs written with OpenCV (and one 13-sample single-page TIFF written byte by
byte, which OpenCV cannot decode), real model configs and checkpoints, and one real
``tools/train.py`` run that skips a broken file and then meets a non-finite loss.
"""
import copy
import glob
import os
import os.path as osp
import re
import shutil
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.registry import DATASETS, MODELS

import cmid_mm  # noqa: F401  (registers everything, safe checkpoint loading)
from cmid_mm.datasets import RSImageFolder
from cmid_mm.datasets.transforms import BlockMaskGenerator, LoadRSImageFromFile
from cmid_mm.datasets.transforms.loading import BadImageError
from cmid_mm.models.heads import QueueContrastiveHead
from cmid_mm.converters.arch_check import (CheckpointArchMismatch, backbone_weights,
                                      check_backbone_checkpoint)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SAMPLE = osp.join(REPO, 'data', 'rs_sample', 'images')
DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
PNG = osp.join(SAMPLE, 'l8_y0000_x0000.png')  # 128 x 128 RGB
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def _write_tiff_one_page(path, arr):
    """A classic little-endian TIFF, one page, (H, W, C) uint16 samples interleaved."""
    h, w, c = arr.shape
    data = arr.astype('<u2').tobytes()
    n_tags, ifd = 10, 8
    bps_at = ifd + 2 + 12 * n_tags + 4
    data_at = bps_at + 2 * c
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, c, bps_at), (259, 3, 1, 1),
            (262, 3, 1, 1), (273, 4, 1, data_at), (277, 3, 1, c), (278, 3, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    out = b'II*\x00' + struct.pack('<IH', ifd, n_tags)
    for tag, typ, count, value in tags:
        out += struct.pack('<HHIHH' if typ == 3 and count == 1 else '<HHII', tag, typ, count,
                           *((value, 0) if typ == 3 and count == 1 else (value, )))
    out += struct.pack('<I', 0) + struct.pack(f'<{c}H', *[16] * c) + data
    with open(path, 'wb') as f:
        f.write(out)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """One of each kind of file, written once."""
    d = tmp_path_factory.mktemp('bad_files')
    raw = open(PNG, 'rb').read()
    bgr = cv2.imread(PNG)
    out = dict(good=PNG, bgr=bgr)
    out['truncated_png'] = str(d / 'truncated.png')
    open(out['truncated_png'], 'wb').write(raw[:len(raw) // 2])
    jpg = cv2.imencode('.jpg', bgr)[1].tobytes()
    out['truncated_jpg'] = str(d / 'truncated.jpg')
    open(out['truncated_jpg'], 'wb').write(jpg[:-100])
    out['empty'] = str(d / 'empty.png')
    open(out['empty'], 'wb').close()
    out['text'] = str(d / 'notes.png')
    open(out['text'], 'w').write('not an image\n')
    out['grey'] = str(d / 'grey.png')
    cv2.imwrite(out['grey'], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    out['rgba'] = str(d / 'rgba.png')
    cv2.imwrite(out['rgba'], np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)]))
    out['png16'] = str(d / 'sixteen.png')
    cv2.imwrite(out['png16'], bgr.astype(np.uint16) * 257)
    rng = np.random.default_rng(0)
    out['bands13'] = rng.integers(0, 10000, (40, 48, 13)).astype(np.uint16)
    out['multipage13'] = str(d / 's2_13band_pages.tif')
    assert cv2.imwritemulti(out['multipage13'],
                            [out['bands13'][..., i] for i in range(13)])
    out['npy13'] = str(d / 's2_13band.npy')
    np.save(out['npy13'], out['bands13'])
    out['onepage13'] = str(d / 's2_13band_onepage.tif')
    _write_tiff_one_page(out['onepage13'], out['bands13'])
    return out


def _load(path, **kwargs):
    return LoadRSImageFromFile(**kwargs)(dict(img_path=path))


# --------------------------------------------------------------------- unreadable files
@pytest.mark.parametrize('kind,detail', [
    ('truncated_png', 'truncated, corrupt or not an image'),
    ('truncated_jpg', 'truncated, corrupt or not an image'),
    ('text', 'truncated, corrupt or not an image'),
    ('empty', 'empty (0 bytes)'),
])
def test_unreadable_file_stops_with_its_name(files, kind, detail):
    with pytest.raises(BadImageError) as info:
        _load(files[kind])
    msg = str(info.value)
    assert msg.startswith(files[kind] + ':') and detail in msg
    assert "on_error='skip'" in msg  # what to do
    assert info.value.reason == 'unreadable' and info.value.path == files[kind]


def test_missing_file_names_it(tmp_path):
    path = str(tmp_path / 'gone.png')
    with pytest.raises(BadImageError, match='gone.png: no such file'):
        _load(path)


def test_good_file_loads_like_mmcv(files):
    out = _load(files['good'], min_size=128)
    assert out['img'].dtype == np.uint8 and out['img_shape'] == (128, 128)
    assert np.array_equal(out['img'], files['bgr'])  # BGR, as mmcv's LoadImageFromFile


# --------------------------------------------------------------------- bands / depth / size
def test_grey_image_vs_rgb_says_to_channels(files):
    with pytest.raises(BadImageError) as info:
        _load(files['grey'])
    msg = str(info.value)
    assert files['grey'] in msg and '1 band(s) (grey)' in msg and 'channels=3' in msg
    assert "to_channels='rgb'" in msg
    img = _load(files['grey'], to_channels='rgb')['img']
    grey = cv2.imread(files['grey'], cv2.IMREAD_UNCHANGED)
    assert img.shape == (128, 128, 3) and all(np.array_equal(img[..., c], grey) for c in range(3))


def test_rgba_image_vs_rgb_offers_both_readings(files):
    with pytest.raises(BadImageError) as info:
        _load(files['rgba'])
    msg = str(info.value)
    assert files['rgba'] in msg and '4 band(s)' in msg
    assert "to_channels='rgb'" in msg and 'channels=4' in msg and 'in_chans=4' in msg
    img = _load(files['rgba'], to_channels='rgb')['img']
    assert np.array_equal(img, files['bgr'])  # alpha dropped, colour untouched
    assert _load(files['rgba'], channels=4)['img'].shape == (128, 128, 4)


def test_16bit_image_vs_uint8_names_dtype(files):
    # (mmcv's LoadImageFromFile silently divides such a file by 256)
    with pytest.raises(BadImageError) as info:
        _load(files['png16'])
    msg = str(info.value)
    assert files['png16'] in msg and 'uint16' in msg and "dtype='uint8'" in msg
    assert "dtype='uint16'" in msg and info.value.reason == 'dtype'
    img = _load(files['png16'], dtype='uint16')['img']
    assert img.dtype == np.uint16 and np.array_equal(img, files['bgr'].astype(np.uint16) * 257)


@pytest.mark.parametrize('kind', ['multipage13', 'npy13'])
def test_13_band_image_vs_rgb_names_bands_and_model_keys(files, kind):
    with pytest.raises(BadImageError) as info:
        _load(files[kind])
    msg = str(info.value)
    assert files[kind] in msg and '13 band(s)' in msg and 'channels=3' in msg
    assert 'set channels=13' in msg and 'model.backbone.in_channels=13' in msg
    assert 'model.mim_head.in_chans=13' in msg
    img = _load(files[kind], channels=13, dtype='uint16')['img']
    assert np.array_equal(img, files['bands13'])  # every band, exact


def test_tiff_with_overview_pages_loads_its_first_page(files, tmp_path):
    path = str(tmp_path / 'with_overview.tif')
    assert cv2.imwritemulti(path, [files['bgr'], cv2.resize(files['bgr'], (64, 64))])
    assert np.array_equal(_load(path)['img'], files['bgr'])


def test_13_band_single_page_tiff_says_how_to_store_it(files):
    raw = open(files['onepage13'], 'rb').read()
    assert cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) is None
    with pytest.raises(BadImageError) as info:
        _load(files['onepage13'], channels=13, dtype='uint16')
    msg = str(info.value)
    assert files['onepage13'] in msg and 'TIFF with 13 bands in one page' in msg
    assert 'multi-page TIFF' in msg and '.npy' in msg


def test_image_smaller_than_min_size(files):
    with pytest.raises(BadImageError) as info:
        _load(files['good'], min_size=(129, 100))
    msg = str(info.value)
    assert files['good'] in msg and '128x128 px' in msg and 'min_size=(129, 100)' in msg
    assert info.value.reason == 'too_small'


@pytest.mark.parametrize('kwargs,named', [
    (dict(on_error='ignore'), "on_error='ignore'"),
    (dict(channels=4, to_channels='rgb'), 'channels=4'),
    (dict(dtype='uint7'), "dtype='uint7'"),
    (dict(min_size=0), 'min_size=(0, 0)'),
    (dict(imdecode_backend='pillow'), "imdecode_backend='pillow'"),
])
def test_loader_arguments_are_checked(kwargs, named):
    with pytest.raises(ValueError, match=named.replace('(', r'\(').replace(')', r'\)')):
        LoadRSImageFromFile(**kwargs)


# --------------------------------------------------------------------- skip mode
def _log_to(tmp_path):
    log = tmp_path / 'skip.log'
    MMLogger.get_instance(f'bad_inputs_{tmp_path.name}', log_file=str(log),
                          log_level='WARNING')
    return log


def test_skip_mode_returns_none_counts_and_logs_the_file(files, tmp_path):
    log = _log_to(tmp_path)
    loader = LoadRSImageFromFile(on_error='skip')
    for kind in ('truncated_png', 'grey', 'png16', 'truncated_jpg'):
        assert loader(dict(img_path=files[kind])) is None
    assert loader(dict(img_path=files['good']))['img'].shape == (128, 128, 3)
    assert loader.skip_counts() == dict(unreadable=2, bands=1, dtype=1, too_small=0,
                                        too_large=0)
    text = log.read_text()
    assert f"skipped image (unreadable): {files['truncated_png']}" in text
    assert f"skipped image (bands): {files['grey']}" in text


def _folder(tmp_path, n_bad=1, n_good=3, name='imgs'):
    d = tmp_path / name
    d.mkdir(parents=True)
    raw = open(PNG, 'rb').read()
    for i in range(n_bad):  # named to sort first: index 0..n_bad-1
        (d / f'a_bad{i}.png').write_bytes(raw[:4000])
    for f in sorted(os.listdir(SAMPLE))[:n_good]:
        shutil.copy(osp.join(SAMPLE, f), d / f'b_{f}')
    return d


def _skip_pipeline():
    return [dict(type='PerSampleSeed'), dict(type='LoadRSImageFromFile', on_error='skip')]


def test_skipped_sample_is_replaced_without_cycles_under_per_sample_seed(tmp_path):
    """mmengine's refetch draws the replacement from numpy's RNG, which PerSampleSeed has just
    reseeded from the bad sample: the same replacement every time, and when that is the bad
    sample itself the dataset retries it until max_refetch. RSImageFolder mixes in the attempt.
    """
    from mmpretrain.datasets import CustomDataset
    d = _folder(tmp_path, n_bad=1, n_good=1)
    _log_to(tmp_path)
    failed = {}
    for cls in (CustomDataset, RSImageFolder):
        failed[cls.__name__] = 0
        ds = cls(data_root=str(d), with_label=False, max_refetch=30, serialize_data=False,
                 pipeline=_skip_pipeline())
        for epoch in range(12):
            ds.pipeline.transforms[0].set_epoch(0, epoch)
            try:
                out = ds[0]
            except Exception:
                failed[cls.__name__] += 1
                continue
            assert osp.basename(out['img_path']).startswith('b_')
    assert failed['RSImageFolder'] == 0
    assert failed['CustomDataset'] > 0, failed  # why RSImageFolder has its own refetch loop


def test_all_files_bad_in_skip_mode_is_a_clear_error(tmp_path):
    d = _folder(tmp_path, n_bad=2, n_good=0)
    _log_to(tmp_path)
    ds = RSImageFolder(data_root=str(d), max_refetch=3, serialize_data=False,
                       pipeline=_skip_pipeline())
    with pytest.raises(RuntimeError) as info:
        ds[0]
    msg = str(info.value)
    assert str(d) in msg and '3 random replacements were all skipped' in msg
    assert "on_error='raise'" in msg


def test_skip_counts_include_dataloader_workers(tmp_path):
    """Counts live in shared memory: 2 forked workers report what num_workers=0 reports."""
    d = _folder(tmp_path, n_bad=2, n_good=4)
    _log_to(tmp_path)
    counts = []
    for workers in (0, 2):
        ds = RSImageFolder(data_root=str(d), serialize_data=False, pipeline=_skip_pipeline())
        ds.pipeline.transforms[0].set_epoch(7, 0)  # deterministic replacements
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers,
                                             collate_fn=pseudo_collate,
                                             multiprocessing_context='fork' if workers else None)
        assert len([b for b in loader]) == 6
        counts.append(ds.pipeline.transforms[1].skip_counts()['unreadable'])
    assert counts[0] >= 2 and counts[1] == counts[0], counts


# --------------------------------------------------------------------- folders
def test_missing_folder_names_it_and_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(tmp_path / 'MillionAID'), pipeline=[])
    msg = str(info.value)
    assert str(tmp_path / 'MillionAID') in msg and 'does not exist' in msg
    assert 'train_dataloader.dataset.data_root' in msg


def test_empty_folder_names_it_and_the_extensions(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(tmp_path / 'empty'), pipeline=[])
    msg = str(info.value)
    assert str(tmp_path / 'empty') in msg and 'holds no files at all' in msg
    assert '.jpg' in msg and '.tiff' in msg


def test_folder_of_other_files_says_what_it_holds(tmp_path):
    d = tmp_path / 'jp2'
    (d / 'sub').mkdir(parents=True)
    for i in range(3):
        (d / 'sub' / f'tile{i}.jp2').write_bytes(b'x')
    (d / 'readme.txt').write_text('x')
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(d), pipeline=[])
    msg = str(info.value)
    assert '3 .jp2, 1 .txt files' in msg and 'extensions=(...)' in msg


# --------------------------------------------------------------------- configs use them
def test_pretrain_configs_use_the_checked_loader_and_folder():
    demo = Config.fromfile(DEMO)
    assert demo.train_dataloader.dataset.type == 'RSImageFolder'
    loader = [t for t in demo.train_dataloader.dataset.pipeline
              if t['type'] == 'LoadRSImageFromFile']
    assert loader == [dict(type='LoadRSImageFromFile', channels=3, min_size=128)]
    assert 'SkippedImagesHook' in [h['type'] for h in demo.custom_hooks]
    swin = Config.fromfile(osp.join(REPO, 'configs', 'cmid_swin_pretrain.py'))
    assert swin.train_dataloader.dataset.type == 'RSImageFolder'
    # the override documented in millionaid_cmid.py points at the loader
    assert swin.train_dataloader.dataset.pipeline[1]['type'] == 'LoadRSImageFromFile'
    init_default_scope('mmpretrain')  # as the Runner does (CMIDMultiView builds views)
    cfg = copy.deepcopy(demo.train_dataloader.dataset)
    cfg.data_root = osp.join(REPO, 'data', 'rs_sample')
    sample = DATASETS.build(cfg)[0]  # the real demo pipeline on a real image
    assert [tuple(v.shape) for v in sample['inputs']] == [(3, 128, 128)] * 2


# --------------------------------------------------------------------- masks, queue, arch
@pytest.mark.parametrize('ratio', [0.0, 1.0, -0.1, 1.5])
def test_mask_ratio_outside_0_1_names_the_value(ratio):
    with pytest.raises(ValueError, match=rf'mask_ratio={ratio} must be in \(0, 1\)'):
        BlockMaskGenerator(input_size=128, block_size=32, mask_ratio=ratio)


def test_input_size_not_divisible_by_block_names_both():
    with pytest.raises(ValueError, match=r'input_size=100 .*block_size=32'):
        BlockMaskGenerator(input_size=100, block_size=32)
    with pytest.raises(ValueError, match=r'block_size=30 .*token_stride=4'):
        BlockMaskGenerator(input_size=120, block_size=30, token_stride=4)


def test_queue_not_divisible_by_global_batch_names_both():
    head = QueueContrastiveHead(feat_dim=8, queue_len=1000)
    with pytest.raises(ValueError, match=r'queue_len=1000 .*\(24 = batch size x world size\)'):
        head.enqueue(torch.randn(24, 8))
    assert int(head.queue_ptr) == 0  # nothing written


def test_unknown_backbone_arch_names_it_and_the_choices():
    cfg = Config.fromfile(DEMO).model
    cfg.backbone.depth = 19
    with pytest.raises(KeyError, match=r'depth=19 .*model\.backbone\.depth .*\[18, 34, 50'):
        MODELS.build(cfg)
    with pytest.raises(AssertionError, match=r"Arch huge is not in default archs .*'base'"):
        MODELS.build(dict(type='CMIDSwinTransformer', arch='huge'))
    with pytest.raises(AssertionError, match=r"Arch b2 is not in default archs .*'base'"):
        MODELS.build(dict(type='CMIDVisionTransformer', arch='b2'))
    with pytest.raises(KeyError, match='ResNet19 is not in the mmpretrain::model registry'):
        MODELS.build(dict(type='ResNet19'))


# --------------------------------------------------------------------- downstream weights
@pytest.fixture(scope='module')
def r50_file(tmp_path_factory):
    from mmpretrain.models import ResNet
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'resnet50_backbone.pth'
    sd = ResNet(depth=50).state_dict()
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in sd.items()}}, path)
    return str(path)


def test_resnet50_file_into_resnet18_is_logged_by_mmengine_but_raised_here(r50_file):
    backbone = MODELS.build(dict(type='CMIDResNet', depth=18, out_indices=(3, )))
    before = backbone.conv1.weight.clone()
    # mmengine's loader (what init_cfg=Pretrained does): no error, the stem is overwritten
    load_checkpoint(backbone, r50_file, strict=False, revise_keys=[(r'^backbone\.', '')],
                    logger='silent')
    assert not torch.equal(backbone.conv1.weight, before)
    with pytest.raises(CheckpointArchMismatch) as info:
        check_backbone_checkpoint(backbone, r50_file)
    msg, report = str(info.value), info.value.report
    assert r50_file in msg and 'CMIDResNet(depth=18)' in msg
    assert 'layer1.0.conv1.weight (64, 64, 1, 1) vs (64, 64, 3, 3)' in msg
    assert 'in the file but not in the backbone: layer1.0.conv3.weight' in msg
    assert ('layer1.0.conv3.weight' in report.unexpected and not report.missing
            and 'mask_token' not in report.missing)  # the CMID token is not a mismatch
    assert 'conv1.weight' in report.matched  # same stem in both


def test_swin_bigger_file_into_smaller_swin(tmp_path):
    def swin(dims, depths):
        return MODELS.build(dict(type='SwinTransformer', img_size=64, window_size=4, arch=dict(
            embed_dims=dims, depths=depths, num_heads=[1, 2, 2, 4])))

    path = str(tmp_path / 'swin_big.pth')
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in swin(32, [2, 2, 4, 2]).state_dict().items()}}, path)
    with pytest.raises(CheckpointArchMismatch) as info:
        check_backbone_checkpoint(swin(16, [2, 2, 2, 2]), path)
    msg = str(info.value)
    assert 'SwinTransformer(embed_dims=16)' in msg
    assert 'patch_embed.projection.weight (32, 3, 4, 4) vs (16, 3, 4, 4)' in msg
    assert 'stages.2.blocks.2.' in msg  # the extra blocks of the bigger file
    assert check_backbone_checkpoint(swin(32, [2, 2, 4, 2]), path).ok


def test_wrong_prefix_says_which_prefixes_exist(r50_file):
    with pytest.raises(ValueError, match=r"no key starts with prefix 'teacher\.'.*prefix=''"):
        backbone_weights(torch.load(r50_file), prefix='teacher.', source=r50_file)


def test_check_weights_cli_exit_code_and_keys(r50_file, tmp_path):
    cli = osp.join(REPO, 'tools', 'analysis_tools', 'check_weights.py')
    proc = subprocess.run([sys.executable, cli, DEMO, r50_file], capture_output=True,
                          text=True, timeout=300, env=ENV, cwd=REPO)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'MISMATCH' in proc.stderr and 'CMIDResNet(depth=18)' in proc.stderr
    assert 'layer1.0.conv3.weight' in proc.stderr


# --------------------------------------------------------------------- non-finite loss
def _demo_model_and_batch():
    cfg = Config.fromfile(DEMO)
    init_default_scope('mmpretrain')
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 10)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    data_cfg.data_root = osp.join(REPO, 'data', 'rs_sample')
    data_cfg.indices = 2
    ds = DATASETS.build(data_cfg)
    data = model.data_preprocessor(default_collate([ds[0], ds[1]]), training=True)
    return model, data['inputs'], data['data_samples']


def test_non_finite_loss_names_the_term_and_leaves_queue_and_centre():
    model, views, samples = _demo_model_and_batch()
    MessageHub.get_current_instance().update_info('iter', 17)
    views[1][0, 0, 5, 5] = float('inf')  # one corrupt pixel of view B
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"iteration 17: \{'loss_rec': nan"):
        model.loss(views, samples)
    after = model.state_dict()
    # the queue, its pointer and the DINO centre are updated only after the check
    for key in ('global_head.queue', 'global_head.queue_ptr', 'local_head.center'):
        assert torch.equal(after[key], state[key]), key
    # no student weight changed (BN running statistics did: the forward pass ran; the EMA
    # teacher took its step towards the unchanged student before the forward pass)
    assert all(torch.equal(p, params[k]) for k, p in model.named_parameters()
               if not k.startswith('teacher.'))


def test_non_finite_loss_weight_is_refused_at_build():
    cfg = Config.fromfile(DEMO).model
    cfg.loss_weights = dict(loss_local=float('nan'))
    with pytest.raises(ValueError, match=r"loss_weights must be finite.*'loss_local': nan"):
        MODELS.build(cfg)


NAN_MODULE = '''
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from cmid_mm.models.losses import DINOLocalLoss


@MODELS.register_module()
class NaNAtIterLocalLoss(DINOLocalLoss):
    """The DINO local loss, made NaN at one iteration (test fault injection)."""

    def __init__(self, nan_iter, **kwargs):
        super().__init__(**kwargs)
        self.nan_iter = nan_iter

    def forward(self, student, teacher):
        loss = super().forward(student, teacher)
        if MessageHub.get_current_instance().get_info('iter') == self.nan_iter:
            loss = loss * float('nan')
        return loss
'''


def test_train_run_skips_broken_file_then_stops_on_nan_keeping_last_checkpoint(tmp_path):
    """tools/train.py on the demo config, 5 files (one truncated), 2 images per step, 2 steps
    per epoch; the local loss turns NaN at iteration 3 (the 2nd step of epoch 2)."""
    _folder(tmp_path / 'data', n_bad=1, n_good=4, name='images')  # the demo's data_prefix
    (tmp_path / 'nan_inject.py').write_text(NAN_MODULE)
    (tmp_path / 'nan_cfg.py').write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['cmid_mm', 'nan_inject'], allow_failed_imports=False)\n"
        "model = dict(local_loss=dict(type='NaNAtIterLocalLoss', nan_iter=3))\n")
    work = tmp_path / 'work'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(tmp_path / 'nan_cfg.py'),
           '--work-dir', str(work), '--cfg-options',
           f'train_dataloader.dataset.data_root={tmp_path / "data"}',
           'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.sampler.shuffle=False', 'train_cfg.max_epochs=2',
           'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
           'train_dataloader.dataset.pipeline.1.on_error=skip']  # as in millionaid_cmid.py
    env = dict(ENV, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # stopped at iteration 3 naming only the local term
    assert "FloatingPointError: non-finite CMID loss at iteration 3: {'loss_local': nan}" \
        in proc.stderr, out[-3000:]
    # the broken file was skipped, named, and counted at the end of epoch 1 (at least once:
    # its random replacement can be itself; mmengine's logger shows a repeated warning once)
    bad = str(tmp_path / 'data' / 'images' / 'a_bad0.png')
    lines = out.splitlines()
    end1 = next(i for i, line in enumerate(lines) if 'skipped images:' in line)
    assert any(f'skipped image (unreadable): {bad}:' in line for line in lines[:end1])
    summary = re.search(r'skipped images: (\d+) in epoch 1 \(unreadable=(\d+)\)', lines[end1])
    assert summary and int(summary[1]) == int(summary[2]) >= 1, lines[end1]
    # the last good checkpoint: epoch 1, complete, finite and loadable into the model
    assert (work / 'epoch_1.pth').is_file()
    assert not glob.glob(str(work / 'epoch_2*'))
    assert open(work / 'last_checkpoint').read().strip().endswith('epoch_1.pth')
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    sd = ckpt['state_dict']
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    model = MODELS.build(Config.fromfile(DEMO).model)
    model.load_state_dict(sd, strict=True)  # strict: every key of the model, no extra
    # epoch 1 ran its two steps: the DINO centre moved away from its zero initialisation
    assert sd['local_head.center'].abs().sum() > 0

