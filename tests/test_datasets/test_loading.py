"""LoadRSImageFromFile: a bad file gives a clear error that names the file and what to do
(truncated, empty, grey / RGBA / 16-bit PNGs, 13-band TIFFs written with OpenCV and one
13-sample single-page TIFF written byte by byte, which OpenCV cannot decode); skip mode."""
import struct

import cv2
import numpy as np
import pytest

from cmid_mm.datasets.transforms import LoadRSImageFromFile
from cmid_mm.datasets.transforms.loading import BadImageError
from tests.test_datasets.bad_files import PNG, log_warnings_to


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


def test_skip_mode_returns_none_counts_and_logs_the_file(files, tmp_path):
    log = log_warnings_to(tmp_path)
    loader = LoadRSImageFromFile(on_error='skip')
    for kind in ('truncated_png', 'grey', 'png16', 'truncated_jpg'):
        assert loader(dict(img_path=files[kind])) is None
    assert loader(dict(img_path=files['good']))['img'].shape == (128, 128, 3)
    assert loader.skip_counts() == dict(unreadable=2, bands=1, dtype=1, too_small=0,
                                        too_large=0)
    text = log.read_text()
    assert f"skipped image (unreadable): {files['truncated_png']}" in text
    assert f"skipped image (bands): {files['grey']}" in text
