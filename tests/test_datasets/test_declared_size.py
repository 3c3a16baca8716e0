"""Images that lie about their size: ``LoadRSImageFromFile(max_pixels=...)`` reads the size a
file declares from its header and refuses it before decoding (issue 11, item 2).

Real files throughout: small images written by OpenCV / numpy / tifffile, some with their
size fields rewritten so that they declare a huge image (the pixels that follow are the small
image's, or none), and one real, fully decodable PNG of 20000 x 20000 zeros (400 KB on disk,
400 MB decoded).
"""
import glob
import io
import os
import os.path as osp
import struct
import subprocess
import sys
import textwrap
import zlib

import cv2
import numpy as np
import pytest

from cmid_mm.datasets.transforms import LoadRSImageFromFile
from cmid_mm.datasets.transforms.image_header import declared_sizes
from cmid_mm.datasets.transforms.loading import BadImageError

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PNG = osp.join(REPO, 'data', 'rs_sample', 'images', 'l8_y0000_x0000.png')  # 128 x 128 RGB
S2_TILES = sorted(glob.glob(osp.join(REPO, 'data', 's2_13band', 'img_dir', '*', '*.tif')))
HUGE = 20000  # declared height and width: 4e8 pixels > the default 2**28, < OpenCV's 2**30


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_ihdr(height, width, colour_type=2):
    return _png_chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, colour_type, 0, 0, 0))


def png_header_only(height, width):
    """A PNG with a valid IHDR (CRC included) and no pixel data at all."""
    return b'\x89PNG\r\n\x1a\n' + _png_ihdr(height, width) + _png_chunk(b'IEND', b'')


def png_of_zeros(path, height, width):
    """A real, decodable 8-bit grey PNG of zeros, written row by row (never held in memory)."""
    comp = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + the row
    rows_per_chunk = max(1, (1 << 22) // len(row))
    idat = []
    for start in range(0, height, rows_per_chunk):
        idat.append(comp.compress(row * min(rows_per_chunk, height - start)))
    idat.append(comp.flush())
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + _png_ihdr(height, width, colour_type=0) +
                _png_chunk(b'IDAT', b''.join(idat)) + _png_chunk(b'IEND', b''))


def patch_jpeg_size(jpeg: bytes, height, width) -> bytes:
    """The JPEG with the height and width of its (baseline) frame header rewritten."""
    at = jpeg.index(b'\xff\xc0')
    return jpeg[:at + 5] + struct.pack('>HH', height, width) + jpeg[at + 9:]


def tiff_pages(pages, order='<'):
    """A classic TIFF: one uncompressed 8-bit grey page per (declared height, width, pixels)."""
    out, tail = bytearray(b'II*\x00' if order == '<' else b'MM\x00*'), bytearray()
    n_tags = 8
    ifd_size = 2 + 12 * n_tags + 4
    out += struct.pack(order + 'I', 8)
    data_at = 8 + ifd_size * len(pages)
    for i, (h, w, pixels) in enumerate(pages):
        data = pixels.astype(np.uint8).tobytes()
        tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                (273, 4, data_at + len(tail)), (278, 4, h), (279, 4, len(data))]
        out += struct.pack(order + 'H', n_tags)
        for tag, typ, value in tags:
            out += struct.pack(order + ('HHIHH' if typ == 3 else 'HHII'), tag, typ, 1,
                               *((value, 0) if typ == 3 else (value, )))
        nxt = 8 + ifd_size * (i + 1) if i + 1 < len(pages) else 0
        out += struct.pack(order + 'I', nxt)
        tail += data
    return bytes(out + tail)


@pytest.fixture(scope='module')
def bgr():
    return cv2.imread(PNG)


def _write(tmp_path, name, content):
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
        f.write(content)
    return path


def huge_files(tmp_path, bgr):
    """{kind: path} of small files (at most a few KB) that declare HUGE x HUGE pixels."""
    png = cv2.imencode('.png', bgr)[1].tobytes()
    png_lying = png[:16] + struct.pack('>II', HUGE, HUGE) + png[24:29]
    png_lying += struct.pack('>I', zlib.crc32(png_lying[12:29]) & 0xFFFFFFFF) + png[33:]
    bmp = bytearray(cv2.imencode('.bmp', bgr)[1].tobytes())
    bmp[18:26] = struct.pack('<ii', HUGE, -HUGE)  # negative height: top-down rows
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, dict(descr='|u1', fortran_order=False, shape=(HUGE, HUGE, 3)))
    npy_header = buf.getvalue() + bytes(1000)
    small = bgr[:8, :8, 0]
    return {
        'png_header_only': _write(tmp_path, 'header_only.png', png_header_only(HUGE, HUGE)),
        'png_lying_ihdr': _write(tmp_path, 'lying.png', png_lying),
        'jpeg': _write(tmp_path, 'lying.jpg', patch_jpeg_size(
            cv2.imencode('.jpg', bgr)[1].tobytes(), HUGE, HUGE)),
        'tiff': _write(tmp_path, 'lying.tif', tiff_pages([(HUGE, HUGE, small)])),
        # the first page is small and real: every page counts (OpenCV decodes all of them)
        'tiff_second_page': _write(tmp_path, 'lying_page2.tif', tiff_pages(
            [(8, 8, small), (HUGE, HUGE, small)], order='>')),
        'bmp': _write(tmp_path, 'lying.bmp', bytes(bmp)),
        'pgm': _write(tmp_path, 'lying.pgm', f'P5\n# made by hand\n{HUGE} {HUGE}\n255\n'.encode()
                      + bytes(64)),
        'npy': _write(tmp_path, 'lying.npy', npy_header),
    }


KINDS = ['png_header_only', 'png_lying_ihdr', 'jpeg', 'tiff', 'tiff_second_page', 'bmp', 'pgm',
         'npy']


@pytest.mark.parametrize('kind', KINDS)
def test_file_declaring_a_huge_image_is_refused_with_name_size_limit_and_setting(
        tmp_path, bgr, kind):
    path = huge_files(tmp_path, bgr)[kind]
    assert osp.getsize(path) < 50_000  # the files themselves are small
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile()(dict(img_path=path))
    msg = str(info.value)
    assert info.value.reason == 'too_large' and info.value.path == path
    assert msg.startswith(f'{path}: the ')
    assert f'{HUGE}x{HUGE} px (height x width) = {HUGE * HUGE} pixels' in msg
    assert 'LoadRSImageFromFile(max_pixels=268435456)' in msg  # the limit, 2**28
    assert 'max_pixels=2**29' in msg  # the setting that would let it through
    assert "on_error='skip'" in msg
    assert 'OPENCV_IO_MAX_IMAGE_PIXELS' not in msg  # 4e8 is within OpenCV's own limit
    if kind == 'tiff_second_page':
        assert 'the largest of its 2 pages' in msg


@pytest.mark.parametrize('kind', KINDS)
def test_skip_mode_skips_and_counts_a_huge_declared_image(tmp_path, bgr, kind):
    path = huge_files(tmp_path, bgr)[kind]
    loader = LoadRSImageFromFile(on_error='skip')
    assert loader(dict(img_path=path)) is None
    assert loader(dict(img_path=PNG))['img'].shape == (128, 128, 3)
    assert loader.skip_counts() == dict(unreadable=0, bands=0, dtype=0, too_small=0,
                                        too_large=1)


def test_the_limit_is_what_stops_them(tmp_path, bgr):
    """Raised above the declared size, the files are decoded: there is no image behind the
    header, so they are then unreadable (the size check comes first, and only it)."""
    files = huge_files(tmp_path, bgr)
    for kind in ('png_header_only', 'tiff', 'pgm', 'npy'):
        with pytest.raises(BadImageError) as info:
            LoadRSImageFromFile(max_pixels=HUGE * HUGE)(dict(img_path=files[kind]))
        assert info.value.reason == 'unreadable', (kind, str(info.value))


def test_header_only_png_is_refused_before_decoding(tmp_path):
    """By construction: the file has no pixel data, so a decoder could only say 'truncated'
    ('unreadable'); 'too_large' comes from the header alone."""
    path = _write(tmp_path, 'h.png', png_header_only(HUGE, HUGE))
    assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is None
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile()(dict(img_path=path))
    assert info.value.reason == 'too_large'
    assert '(not decoded: it would take 0.37 GiB per 8-bit band; the file has 45 bytes)' \
        in str(info.value)


def test_a_sentinel2_tile_size_is_within_the_default(tmp_path):
    """10980 x 10980 declared: not refused for its size (the missing data makes it unreadable)."""
    path = _write(tmp_path, 's2_tile.png', png_header_only(10980, 10980))
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile()(dict(img_path=path))
    assert info.value.reason == 'unreadable'


def test_more_than_opencv_limit_says_both_settings(tmp_path, bgr):
    """40000 x 40000 exceeds OpenCV's own 2**30: before, a raw cv2.error without the file
    name, also with on_error='skip'; now our error, with both settings to raise."""
    path = _write(tmp_path, 'big.jpg', patch_jpeg_size(cv2.imencode('.jpg', bgr)[1].tobytes(),
                                                       40000, 40000))
    with pytest.raises(cv2.error):
        cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile()(dict(img_path=path))
    msg = str(info.value)
    assert msg.startswith(path) and 'max_pixels=2**31' in msg
    assert f'OPENCV_IO_MAX_IMAGE_PIXELS={40000 * 40000}' in msg
    # with our check off, OpenCV's refusal is still a BadImageError naming the file: skipped
    loader = LoadRSImageFromFile(max_pixels=None, on_error='skip')
    assert loader(dict(img_path=path)) is None and loader.skip_counts()['too_large'] == 1
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile(max_pixels=None)(dict(img_path=path))
    assert str(info.value).startswith(path) and 'OPENCV_IO_MAX_IMAGE_PIXELS' in str(info.value)


# --------------------------------------------------------------------- normal images
def _exif_app1_with_thumbnail_sof() -> bytes:
    """An APP1 segment whose payload contains a thumbnail's frame header (999 x 777): the
    parser must skip it by length, not read its SOF."""
    payload = b'Exif\x00\x00' + b'\xff\xd8\xff\xc0\x00\x11\x08' + struct.pack('>HH', 999, 777)
    payload += bytes(32)
    return b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload


def normal_files(tmp_path, bgr):
    rect = np.ascontiguousarray(bgr[:100, :120])  # not square: height and width not swapped
    grey = cv2.cvtColor(rect, cv2.COLOR_BGR2GRAY)
    out = {}
    for ext, img, params in [('.png', rect, []), ('.jpg', rect, []),
                             ('.jpeg', rect, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                             ('.bmp', rect, []), ('.ppm', rect, []), ('.pgm', grey, []),
                             ('.pbm', grey, []), ('.tif', rect, []),
                             ('.png', rect.astype(np.uint16) * 257, [])]:
        name = f'img{len(out)}{ext}'
        out[name] = _write(tmp_path, name, cv2.imencode(ext, img, params)[1].tobytes())
    jpg = cv2.imencode('.jpg', rect)[1].tobytes()
    out['exif.jpg'] = _write(tmp_path, 'exif.jpg', jpg[:2] + _exif_app1_with_thumbnail_sof() +
                             jpg[2:])
    out['pages.tif'] = str(tmp_path / 'pages.tif')  # 3 single-band pages: stacked as bands
    assert cv2.imwritemulti(out['pages.tif'], [grey, grey // 2, grey // 3])
    out['rect.npy'] = str(tmp_path / 'rect.npy')
    np.save(out['rect.npy'], rect)
    return out


def test_declared_size_of_normal_files_is_their_decoded_size(tmp_path, bgr):
    files = normal_files(tmp_path, bgr)
    for name, path in files.items():
        content = open(path, 'rb').read()
        declared = declared_sizes(content)
        assert declared is not None, name
        if name.endswith('.npy'):
            shape = np.load(path).shape
        else:
            ok, pages = cv2.imdecodemulti(np.frombuffer(content, np.uint8),
                                          cv2.IMREAD_UNCHANGED)
            assert ok, name
            shape = pages[0].shape
            assert declared[1] == [p.shape[:2] for p in pages], name
        assert declared[1][0] == (100, 120) == shape[:2], (name, declared)


@pytest.mark.parametrize('max_pixels', [2**28, None, 100 * 120])
def test_normal_images_load_exactly_as_before(tmp_path, bgr, max_pixels):
    files = normal_files(tmp_path, bgr)
    for name, path in files.items():
        out = LoadRSImageFromFile(channels=3, dtype=None, to_channels='rgb',
                                  max_pixels=max_pixels)(dict(img_path=path))
        if name.endswith('.npy'):
            expected = np.load(path)
        elif name == 'pages.tif':
            expected = np.stack(cv2.imreadmulti(path, flags=cv2.IMREAD_UNCHANGED)[1], axis=-1)
        else:
            expected = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if expected.ndim == 2:
            expected = np.repeat(expected[..., None], 3, axis=2)
        assert out['img'].dtype == expected.dtype and np.array_equal(out['img'], expected), name


def test_limit_boundary_on_a_real_image(bgr):
    """128 x 128 = 16384 pixels: max_pixels=16384 loads it, 16383 refuses it."""
    img = LoadRSImageFromFile(max_pixels=128 * 128)(dict(img_path=PNG))['img']
    assert np.array_equal(img, bgr)
    with pytest.raises(BadImageError, match=r'128x128 px .* = 16384 pixels, more than '
                                            r'LoadRSImageFromFile\(max_pixels=16383\)'):
        LoadRSImageFromFile(max_pixels=128 * 128 - 1)(dict(img_path=PNG))


def test_formats_without_a_parsed_header_are_checked_after_decoding(tmp_path, bgr):
    """Sun raster (OpenCV reads it, its header is not parsed here): the decoded size counts."""
    path = _write(tmp_path, 'img.ras', cv2.imencode('.sr', bgr)[1].tobytes())
    assert declared_sizes(open(path, 'rb').read()) is None
    assert np.array_equal(LoadRSImageFromFile()(dict(img_path=path))['img'], bgr)
    with pytest.raises(BadImageError) as info:
        LoadRSImageFromFile(max_pixels=1000)(dict(img_path=path))
    assert info.value.reason == 'too_large'
    assert str(info.value).startswith(f'{path}: the decoded image is 128x128 px')


def test_geotiffs_and_bigtiff_declare_their_size(tmp_path):
    tifffile = pytest.importorskip('tifffile')
    if not S2_TILES:
        pytest.skip('data/s2_13band is not in this checkout')
    for path in S2_TILES[:3]:  # real 13-band GeoTIFFs
        with tifffile.TiffFile(path) as tif:
            expected = [(p.imagelength, p.imagewidth) for p in tif.pages]
        assert declared_sizes(open(path, 'rb').read()) == ('TIFF', expected), path
    arr = np.arange(50 * 70 * 4, dtype=np.uint16).reshape(50, 70, 4)
    big = str(tmp_path / 'big.tif')
    tifffile.imwrite(big, arr, bigtiff=True, photometric='rgb', extrasamples=['unspecified'])
    assert declared_sizes(open(big, 'rb').read()) == ('BigTIFF', [(50, 70)])
    out = LoadRSImageFromFile(channels=4, dtype='uint16', tiff_reader='tifffile')(
        dict(img_path=big))
    assert np.array_equal(out['img'], arr)
    with pytest.raises(BadImageError, match='the BigTIFF header declares 50x70 px'):
        LoadRSImageFromFile(channels=4, dtype='uint16', tiff_reader='tifffile',
                            max_pixels=3000)(dict(img_path=big))


@pytest.mark.parametrize('value', [0, -1, 1.5, True, '2**28'])
def test_max_pixels_argument_is_checked(value):
    with pytest.raises(ValueError, match=rf'max_pixels={value!r} must be a positive int'.replace(
            '*', r'\*')):
        LoadRSImageFromFile(max_pixels=value)


# --------------------------------------------------------------------- memory
RSS_SCRIPT = textwrap.dedent('''
    import sys
    from cmid_mm.datasets.transforms import LoadRSImageFromFile

    def status_mb(field):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) // 1024

    for max_pixels in (2**28, 20000 * 20000):
        loader = LoadRSImageFromFile(channels=1, on_error='skip', max_pixels=max_pixels)
        # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS, so
        # the peak below is this call's own, not what the imports held for a while before.
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = status_mb('VmRSS')
        out = loader(dict(img_path=sys.argv[1]))
        print(status_mb('VmHWM') - before, out is None, loader.skip_counts()['too_large'])
''')


def test_a_real_decompression_bomb_is_refused_without_allocating(tmp_path):
    """A real PNG of 20000 x 20000 zeros (about 400 KB): decoded, 400 MB. Refused, the peak
    memory of that call is less than 50 MB above the memory before it; decoded (limit raised),
    >= 350 MB. The peak is reset before each call (Linux /proc/self/clear_refs)."""
    path = str(tmp_path / 'zeros.png')
    png_of_zeros(path, HUGE, HUGE)
    assert osp.getsize(path) < 1_000_000
    proc = subprocess.run([sys.executable, '-c', RSS_SCRIPT, path], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    refused, decoded = [line.split() for line in proc.stdout.splitlines()[-2:]]
    assert refused[1:] == ['True', '1'] and int(refused[0]) < 50, proc.stdout
    # the same file with the limit raised: decoded (a 1-band uint8 image of 381 MB, not
    # skipped): the peak of that call is at least the image (measured: refused +2 MB, decoded
    # +764 MB)
    assert decoded[1:] == ['False', '0'] and int(decoded[0]) >= 350, proc.stdout
