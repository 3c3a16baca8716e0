"""Load remote-sensing images and refuse the ones that do not fit the configured data.

mmcv's ``LoadImageFromFile`` decodes with OpenCV's ``IMREAD_COLOR``, which silently turns
every file into 8-bit, 3-channel BGR: a grey image is replicated, the alpha band of an RGBA
image and the 4th band of an RGB+NIR TIFF are dropped, and 16-bit data are divided by 256.
A truncated PNG or JPEG makes OpenCV 4.11 return ``None`` (measured on this stack), which mmcv
turns into ``AssertionError: failed to load image`` (gone under ``python -O``), and a TIFF with
more than 4 bands in one page cannot be decoded by OpenCV at all. A file whose header declares
more than 2^30 pixels makes OpenCV raise a ``cv2.error`` that does not name the file, and one
that declares fewer is decoded whatever its size: a 1.2 MB PNG of zeros declaring 20000 x 20000
RGB pixels decodes to 1.2 GB. ``max_pixels`` refuses such files from their header, before
decoding (:mod:`.image_header`).

:class:`LoadRSImageFromFile` decodes the file as stored (``IMREAD_UNCHANGED``), then checks it
against what the config expects (number of bands, pixel type, minimum size) and either stops
with an error that names the file, what was found and what to set, or (``on_error='skip'``)
skips the sample: ``BaseDataset`` then draws another index, the skip is logged as a warning with
the file name, and the count is reported per epoch by ``SkippedImagesHook``.
"""
import io
import logging
import os.path as osp
import struct
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import mmengine.fileio as fileio
import numpy as np
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

from .image_header import declared_sizes

# Why a sample was skipped; the columns of the skip counters.
SKIP_REASONS = ('unreadable', 'bands', 'dtype', 'too_small', 'too_large')
# Rows of the skip counters: 0 = the main process, 1.. = data-loader worker id + 1. Each
# process writes only its own row, so concurrent workers never lose an increment (more than
# MAX_WORKER_ROWS - 1 workers share rows modulo that number).
MAX_WORKER_ROWS = 65
TIFF_EXTENSIONS = ('.tif', '.tiff')
# Default largest height x width: 16384^2. A Sentinel-2 tile (10980^2 px) fits; OpenCV's own
# limit is 2^30 (environment variable OPENCV_IO_MAX_IMAGE_PIXELS, read when cv2 is loaded).
DEFAULT_MAX_PIXELS = 2**28
OPENCV_MAX_PIXELS = 2**30


class BadImageError(ValueError):
    """An image file that cannot be used as configured.

    Attributes:
        path (str): the file.
        reason (str): one of ``SKIP_REASONS``.
    """

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def tiff_samples_per_pixel(content: bytes) -> Optional[int]:
    """``SamplesPerPixel`` (tag 277) of the first page of a classic TIFF; None if not one."""
    order = {b'II*\x00': '<', b'MM\x00*': '>'}.get(bytes(content[:4]))
    if order is None:
        return None
    try:
        (ifd, ) = struct.unpack(order + 'I', content[4:8])
        (n_tags, ) = struct.unpack(order + 'H', content[ifd:ifd + 2])
        for i in range(n_tags):
            entry = content[ifd + 2 + 12 * i:ifd + 14 + 12 * i]
            tag, typ = struct.unpack(order + 'HH', entry[:4])
            if tag == 277:  # SHORT (3) or LONG (4), stored in the entry itself
                fmt, end = ('H', 10) if typ == 3 else ('I', 12)
                return struct.unpack(order + fmt, entry[8:end])[0]
    except struct.error:
        return None
    return 1  # the TIFF default


def import_tifffile():
    """The optional ``tifffile`` module, or an ImportError that says how to install it."""
    try:
        import tifffile
    except ImportError as e:
        raise ImportError("LoadRSImageFromFile(tiff_reader='tifffile') needs the optional "
                          "package tifffile: pip install tifffile (or pip install -r "
                          "requirements/optional.txt); or use tiff_reader='cv2' for TIFFs of "
                          'at most 4 bands per page') from e
    return tifffile


def resolve_bands(bands, band_names) -> Optional[list]:
    """0-based indices of ``bands`` (ints, or names looked up in ``band_names``)."""
    if bands is None:
        return None
    if isinstance(bands, (int, str)) or len(bands) == 0:
        raise ValueError(f'LoadRSImageFromFile: bands={bands!r} must be a non-empty list of '
                         "band indices or names, e.g. [3, 2, 1] or ['B04', 'B03', 'B02']")
    if band_names is not None and len(set(band_names)) != len(band_names):
        raise ValueError(f'LoadRSImageFromFile: band_names={list(band_names)} has duplicates')
    out = []
    for b in bands:
        if isinstance(b, str):
            if band_names is None:
                raise ValueError(f'LoadRSImageFromFile: bands selects {b!r} by name but '
                                 'band_names is not set; give band_names (the bands of the '
                                 "file in order, e.g. ['B01', 'B02', ...]) or use indices")
            if b not in band_names:
                raise ValueError(f'LoadRSImageFromFile: band {b!r} is not in band_names='
                                 f'{list(band_names)}')
            out.append(list(band_names).index(b))
        elif isinstance(b, (int, np.integer)) and b >= 0:
            if band_names is not None and b >= len(band_names):
                raise ValueError(f'LoadRSImageFromFile: band index {b} is out of range for '
                                 f'band_names={list(band_names)} ({len(band_names)} bands)')
            out.append(int(b))
        else:
            raise ValueError(f'LoadRSImageFromFile: bands entry {b!r} must be a band name or '
                             'an index >= 0')
    return out


def _describe(bands: int) -> str:
    return {1: 'grey', 2: 'grey + alpha', 3: 'colour', 4: 'colour + alpha or a 4th band'}.get(
        bands, 'multispectral')


@TRANSFORMS.register_module()
class LoadRSImageFromFile(LoadImageFromFile):
    """Load an image file as stored and check it against the configured data.

    Decoding: OpenCV ``IMREAD_UNCHANGED`` (colour stays in OpenCV's BGR order, as with mmcv's
    loader; the EXIF orientation flag is not applied), except

    * ``.tif`` / ``.tiff`` with several single-band pages of the same size and type: one band
      per page, stacked to ``(H, W, pages)`` (write them with ``cv2.imwritemulti``); other
      multi-page TIFFs: the first page (later pages are e.g. GeoTIFF overviews). A TIFF page
      with more than 4 bands cannot be decoded by OpenCV: the error says so;
    * ``.npy``: a numpy array ``(H, W)`` or ``(H, W, bands)`` (no pickles);
    * with ``tiff_reader='tifffile'``, ``.tif`` / ``.tiff`` (GeoTIFF included) are read with the
      optional ``tifffile`` package: any band count, interleaved or planar, one band per page,
      uint8 / uint16 / int16 / float; the first series (overviews are ignored), as
      ``(H, W, bands)``. ``pip install tifffile`` if it is missing (the error says so).

    Then, before the checks, optionally (``docs/multispectral.md``):

    * ``bands``: keep these bands, in this order: indices (0-based) or names from
      ``band_names`` (the file's band order, e.g. Sentinel-2's
      ``['B01', 'B02', ..., 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12']``);
    * ``nodata``: pixels equal to this value (``float('nan')``: NaN; ``'gdal'``: the
      GeoTIFF's ``GDAL_NODATA`` tag, tifffile only) in a band are replaced by the mean of that
      band's valid pixels in the image (0 when none is valid). With ``nodata_mode='all'``
      only pixels where every kept band equals it are no-data (a single band's value is then
      real data, e.g. Sentinel-2's cirrus band B10 has genuine zeros). ``results[
      'nodata_mask']`` (``(H, W)`` bool, True at no-data pixels: where any kept band, or with
      ``'all'`` every kept band, was nodata) records them;
      ``RandomResizedCropWithBox`` crops / resizes it with the image (and can redraw crops
      with too much no-data: ``max_nodata_ratio``), ``CMIDMultiView`` flips and stacks it.

    Checks, in this order, each raising :class:`BadImageError` naming the file:

    * the file can be read;
    * the image size its header declares, height x width, is at most ``max_pixels``. Read
      from the header before decoding (PNG, JPEG, TIFF / BigTIFF: every page, BMP, PNM / PAM /
      PFM, ``.npy``), so a small file declaring a huge image (corrupt, or a "decompression
      bomb") is refused without allocating its pixels; other formats OpenCV reads are checked
      after decoding;
    * the file can be decoded (truncated, empty, not an image);
    * number of bands == ``channels`` (after the optional ``to_channels`` conversion);
    * pixel type == ``dtype`` (e.g. a 16-bit PNG when 8 bit is expected);
    * height and width >= ``min_size``.

    **Required Keys:** ``img_path``. **Added Keys:** ``img`` (``(H, W)`` for one band,
    ``(H, W, bands)`` otherwise), ``img_shape``, ``ori_shape``.

    Args:
        channels (int): number of bands the pipeline and model expect (3 for RGB).
        to_channels (str, optional): ``'rgb'``: turn grey (1 band) and grey + alpha (2 bands)
            images into 3 equal channels and drop the 4th band of 4-band images (alpha), before
            the check. Needs ``channels=3``. None (default): no conversion.
        dtype (str, optional): expected pixel type, e.g. ``'uint8'`` (default; what the CMID
            RGB pipeline's colour augmentations assume) or ``'uint16'``. None accepts any.
        min_size (int | tuple[int, int], optional): minimum ``(height, width)`` in pixels
            (an int: both). None (default): no check.
        max_pixels (int, optional): largest accepted height x width, checked before decoding
            (see above). Default ``2**28`` (16384 x 16384; a Sentinel-2 tile is 10980 x 10980).
            Bands are not counted: a 13-band uint16 image of ``max_pixels`` pixels takes
            ``26 * max_pixels`` bytes. Raise it for larger scenes (above ``2**30`` also set the
            environment variable ``OPENCV_IO_MAX_IMAGE_PIXELS`` before cv2 is imported: OpenCV
            has its own limit); None: no check of ours.
        on_error (str): ``'raise'`` (default): stop at the first bad file. ``'skip'``: return
            None (mmengine's ``BaseDataset`` then loads a random other index, up to its
            ``max_refetch`` times), log a warning with the file and the reason, and count it
            (see :meth:`skip_counts` and ``SkippedImagesHook``).
        to_float32 (bool): convert the image to float32.
        imdecode_backend (str): only ``'cv2'``.
        tiff_reader (str): ``'cv2'`` (default; at most 4 bands per TIFF page) or
            ``'tifffile'`` (any TIFF / GeoTIFF; needs ``pip install tifffile``).
        bands (Sequence[int | str], optional): bands to keep, by index or by name.
        band_names (Sequence[str], optional): the names of the file's bands, in file order;
            needed to select ``bands`` by name.
        nodata (float | str, optional): the no-data value (see above). None: no handling.
        nodata_mode (str): ``'any'`` (default): a band's value equal to ``nodata`` is no-data
            in that band. ``'all'``: a pixel is no-data only if all kept bands equal it.
        backend_args (dict, optional): file backend arguments (mmengine ``fileio``).
    """

    def __init__(self,
                 channels: int = 3,
                 to_channels: Optional[str] = None,
                 dtype: Optional[str] = 'uint8',
                 min_size: Optional[Union[int, Tuple[int, int]]] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 on_error: str = 'raise',
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None,
                 tiff_reader: str = 'cv2',
                 bands: Optional[Sequence[Union[int, str]]] = None,
                 band_names: Optional[Sequence[str]] = None,
                 nodata: Optional[Union[float, str]] = None,
                 nodata_mode: str = 'any') -> None:
        super().__init__(to_float32=to_float32, imdecode_backend=imdecode_backend,
                         backend_args=backend_args)
        if imdecode_backend != 'cv2':
            raise ValueError(f"LoadRSImageFromFile: imdecode_backend={imdecode_backend!r} is "
                             "not supported; use 'cv2' (the default)")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f'LoadRSImageFromFile: channels={channels!r} must be a positive '
                             'int (3 for RGB, N for N-band images)')
        if to_channels not in (None, 'rgb'):
            raise ValueError(f"LoadRSImageFromFile: to_channels={to_channels!r}; use None or "
                             "'rgb'")
        if to_channels == 'rgb' and channels != 3:
            raise ValueError(f"LoadRSImageFromFile: to_channels='rgb' makes 3 channels but "
                             f'channels={channels}; set channels=3 or to_channels=None')
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"LoadRSImageFromFile: on_error={on_error!r}; use 'raise' (stop "
                             "at the first bad file) or 'skip' (skip and count bad files)")
        if dtype is not None:
            try:
                dtype = np.dtype(dtype).name
            except TypeError as e:
                raise ValueError(f'LoadRSImageFromFile: dtype={dtype!r} is not a numpy type; '
                                 "use e.g. 'uint8', 'uint16' or None") from e
        if min_size is not None:
            min_size = (min_size, min_size) if isinstance(min_size, int) else tuple(min_size)
            if len(min_size) != 2 or any(not isinstance(s, int) or s < 1 for s in min_size):
                raise ValueError(f'LoadRSImageFromFile: min_size={min_size!r} must be a '
                                 'positive int or (height, width)')
        if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(
                max_pixels, (int, np.integer)) or max_pixels < 1):
            raise ValueError(f'LoadRSImageFromFile: max_pixels={max_pixels!r} must be a '
                             'positive int (the largest height x width, e.g. 2**28) or None')
        if tiff_reader not in ('cv2', 'tifffile'):
            raise ValueError(f"LoadRSImageFromFile: tiff_reader={tiff_reader!r}; use 'cv2' or "
                             "'tifffile' (any band count, GeoTIFF)")
        if tiff_reader == 'tifffile':
            import_tifffile()  # fail at build time, not in the first batch
        if nodata == 'gdal' and tiff_reader != 'tifffile':
            raise ValueError("LoadRSImageFromFile: nodata='gdal' reads the GeoTIFF tag, which "
                             "needs tiff_reader='tifffile'")
        if nodata_mode not in ('any', 'all'):
            raise ValueError(f"LoadRSImageFromFile: nodata_mode={nodata_mode!r}; use 'any' (a "
                             "band's value is no-data in that band) or 'all' (a pixel is "
                             'no-data when all kept bands are)')
        if isinstance(nodata, str) and nodata != 'gdal':
            raise ValueError(f"LoadRSImageFromFile: nodata={nodata!r}; use a number, "
                             "float('nan') or 'gdal'")
        self.tiff_reader = tiff_reader
        self.band_names = list(band_names) if band_names is not None else None
        self.band_index = resolve_bands(bands, self.band_names)
        if self.band_index is not None and len(self.band_index) != channels:
            raise ValueError(f'LoadRSImageFromFile: bands={list(bands)} selects '
                             f'{len(self.band_index)} band(s) but channels={channels}; set '
                             f'channels={len(self.band_index)}')
        self.nodata = nodata
        self.nodata_mode = nodata_mode
        self.channels = channels
        self.to_channels = to_channels
        self.dtype = dtype
        self.min_size = min_size
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        self.on_error = on_error
        # Skip counts in shared memory, so that data-loader workers (forked or spawned after
        # the dataset is built) add to the counts the main process reads.
        self._skips = torch.zeros((MAX_WORKER_ROWS, len(SKIP_REASONS)),
                                  dtype=torch.int64).share_memory_()

    # ----------------------------------------------------------------------- counting
    def skip_counts(self) -> Dict[str, int]:
        """Files skipped so far (all processes), per reason in ``SKIP_REASONS``."""
        totals = self._skips.sum(dim=0).tolist()
        return dict(zip(SKIP_REASONS, totals))

    def _count_skip(self, reason: str) -> None:
        info = torch.utils.data.get_worker_info()
        row = 0 if info is None else 1 + info.id % (MAX_WORKER_ROWS - 1)
        self._skips[row, SKIP_REASONS.index(reason)] += 1

    # ----------------------------------------------------------------------- loading
    def _unreadable(self, path: str, detail: str,
                    fix: str = 'Replace or delete the file') -> BadImageError:
        return BadImageError(
            path, 'unreadable',
            f'{path}: {detail}. {fix}, or set on_error=\'skip\' in LoadRSImageFromFile to '
            'skip unreadable files (they are counted, and SkippedImagesHook reports them at '
            'the end of each epoch).')

    def _too_large(self, path: str, height: int, width: int, what: str,
                   detail: str = '') -> BadImageError:
        pixels = height * width
        fix = ('raise max_pixels of LoadRSImageFromFile in the config (here at least '
               f'max_pixels=2**{(pixels - 1).bit_length()}; None: no limit)')
        if pixels > OPENCV_MAX_PIXELS:
            fix += (' and, as OpenCV refuses more than 2**30 pixels itself, set the '
                    f'environment variable OPENCV_IO_MAX_IMAGE_PIXELS={pixels} before starting '
                    'Python')
        return BadImageError(
            path, 'too_large',
            f'{path}: {what} {height}x{width} px (height x width) = {pixels} pixels, more '
            f'than LoadRSImageFromFile(max_pixels={self.max_pixels}) allows{detail}. A small '
            "file declaring a huge image is corrupt or crafted (a 'decompression bomb'): "
            "replace or delete it, or set on_error='skip' to skip such files. If the image is "
            f'genuine, {fix}.')

    def _check_pixels(self, path: str, content: bytes) -> bool:
        """Refuse a header declaring more than ``max_pixels``; False if no size is declared."""
        declared = declared_sizes(content)
        if declared is None:
            return False
        fmt, sizes = declared
        height, width = max(sizes, key=lambda hw: hw[0] * hw[1])
        if self.max_pixels is not None and height * width > self.max_pixels:
            page = f' (the largest of its {len(sizes)} pages)' if len(sizes) > 1 else ''
            raise self._too_large(
                path, height, width, f'the {fmt} header declares{page}',
                f' (not decoded: it would take {height * width / 2**30:.2f} GiB per 8-bit band; '
                f'the file has {len(content)} bytes)')
        return True

    def _cv2_decode(self, path: str, buf: np.ndarray, multi: bool):
        """``cv2.imdecode(multi)`` with OpenCV's exceptions turned into BadImageError."""
        try:
            if multi:
                return cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
            return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error as e:
            detail = str(e).strip().splitlines()[-1]
            if 'validateInputImageSize' in str(e):
                raise BadImageError(
                    path, 'too_large',
                    f'{path}: OpenCV refuses its declared size ({detail}). OpenCV accepts at '
                    'most 2**30 pixels unless the environment variable '
                    'OPENCV_IO_MAX_IMAGE_PIXELS is raised before starting Python (and '
                    "max_pixels of LoadRSImageFromFile with it); or set on_error='skip' to "
                    'skip such files.') from e
            raise self._unreadable(path, f'OpenCV cannot decode it ({detail})') from e

    def _decode(self, path: str, content: bytes) -> np.ndarray:
        size = len(content)
        if size == 0:
            raise self._unreadable(path, 'the file is empty (0 bytes)')
        # Before decoding: the decoder allocates what the header declares.
        checked = self._check_pixels(path, content)
        img = self._decode_checked(path, content)
        if not checked and self.max_pixels is not None \
                and img.shape[0] * img.shape[1] > self.max_pixels:
            raise self._too_large(path, img.shape[0], img.shape[1], 'the decoded image is')
        return img

    def _decode_checked(self, path: str, content: bytes) -> np.ndarray:
        size = len(content)
        ext = osp.splitext(path)[1].lower()
        if ext == '.npy':
            try:
                img = np.load(io.BytesIO(content), allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise self._unreadable(path, f'cannot read it as a .npy array ({e}); it is '
                                       'truncated or not a numpy file') from e
            if img.ndim not in (2, 3):
                raise self._unreadable(path, f'a .npy image must be (H, W) or (H, W, bands); '
                                       f'this array has shape {img.shape}')
            return img
        buf = np.frombuffer(content, np.uint8)
        if ext in TIFF_EXTENSIONS and self.tiff_reader == 'tifffile':
            return self._decode_tifffile(path, content)
        if ext in TIFF_EXTENSIONS:
            ok, pages = self._cv2_decode(path, buf, multi=True)
            if ok and pages:
                # single-band pages of one size and type are bands; otherwise the first page
                # is the image (later ones are e.g. the overviews of a GeoTIFF)
                if len(pages) > 1 and pages[0].ndim == 2 and all(
                        p.shape == pages[0].shape and p.dtype == pages[0].dtype
                        for p in pages):
                    return np.stack(pages, axis=-1)
                return pages[0]
            bands = tiff_samples_per_pixel(content)
            if bands is not None and bands > 4:
                raise self._unreadable(
                    path, f'a TIFF with {bands} bands in one page; OpenCV decodes at most 4',
                    "Set tiff_reader='tifffile' in LoadRSImageFromFile (pip install "
                    'tifffile), or store the bands as a multi-page TIFF (one band per page, '
                    'e.g. cv2.imwritemulti) or as a .npy array (H, W, bands), which '
                    'LoadRSImageFromFile reads')
        img = self._cv2_decode(path, buf, multi=False)
        if img is None:
            raise self._unreadable(path, f'OpenCV cannot decode its {size} bytes: the file is '
                                   'truncated, corrupt or not an image')
        return img

    def _decode_tifffile(self, path: str, content: bytes) -> np.ndarray:
        tifffile = import_tifffile()
        try:
            with tifffile.TiffFile(io.BytesIO(content)) as tif:
                series = tif.series[0]
                img, axes = series.asarray(), series.axes
                gdal_nodata = tif.pages[0].tags.get('GDAL_NODATA')
                self._file_nodata = (None if gdal_nodata is None else float(
                    str(gdal_nodata.value).strip('\x00 ')))
        except Exception as e:  # tifffile raises several types for corrupt files
            raise self._unreadable(path, f'tifffile cannot read it ({type(e).__name__}: {e}); '
                                   'it is truncated, corrupt or not a TIFF') from e
        if 'Y' not in axes or 'X' not in axes:
            raise self._unreadable(path, f'the TIFF series has axes {axes!r} (shape '
                                   f'{img.shape}), without an image plane Y, X')
        y, x = axes.index('Y'), axes.index('X')
        rest = [i for i in range(img.ndim) if i not in (y, x)]
        img = np.transpose(img, [y, x] + rest).reshape(img.shape[y], img.shape[x], -1)
        return np.ascontiguousarray(img[..., 0] if img.shape[2] == 1 else img)

    def _select_and_fill(self, path: str, img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Band selection and no-data filling; returns the image and the no-data mask."""
        if self.band_index is not None:
            found = 1 if img.ndim == 2 else img.shape[2]
            if max(self.band_index) >= found:
                names = '' if self.band_names is None else f' (band_names={self.band_names})'
                raise BadImageError(
                    path, 'bands', f'{path}: the image has {found} band(s) but bands selects '
                    f'index {max(self.band_index)}{names}. Check the bands / band_names of '
                    'LoadRSImageFromFile against the files.')
            img = np.ascontiguousarray((img[..., None] if img.ndim == 2 else img)[
                ..., self.band_index])
            if img.shape[2] == 1:
                img = img[..., 0]
        nodata = self.nodata
        if nodata == 'gdal':
            nodata = self._file_nodata
        if nodata is None:
            return img, None
        cube = img[..., None] if img.ndim == 2 else img
        if np.isnan(nodata):
            invalid = np.isnan(cube) if cube.dtype.kind == 'f' else np.zeros(cube.shape, bool)
        else:  # compared as float64: exact for every uint8 / (u)int16 / float32 value
            invalid = cube.astype(np.float64) == float(nodata)
        if self.nodata_mode == 'all':
            invalid = np.broadcast_to(invalid.all(axis=2, keepdims=True), invalid.shape)
        mask = invalid.any(axis=2)
        if mask.any():
            cube = cube.copy()
            for b in np.flatnonzero(invalid.reshape(-1, cube.shape[2]).any(axis=0)):
                band, bad = cube[..., b], invalid[..., b]
                fill = band[~bad].astype(np.float64).mean() if (~bad).any() else 0.0
                if np.issubdtype(cube.dtype, np.integer):
                    fill = np.round(fill)
                band[bad] = fill
            img = cube[..., 0] if img.ndim == 2 else cube
        return img, mask

    def _load(self, path: str) -> np.ndarray:
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise BadImageError(
                path, 'unreadable', f'{path}: no such file. The dataset lists it but it is '
                'gone: rebuild the file list (ann_file) or restore the file, or set '
                "on_error='skip' in LoadRSImageFromFile") from e
        except OSError as e:
            raise self._unreadable(path, f'cannot read the file ({e})') from e
        self._file_nodata = None
        img = self._decode(path, content)
        img, self._nodata_mask = self._select_and_fill(path, img)
        bands = 1 if img.ndim == 2 else img.shape[2]
        if self.to_channels == 'rgb' and bands in (1, 2, 4):
            grey = img if img.ndim == 2 else img[..., 0]
            img = np.ascontiguousarray(img[..., :3] if bands == 4 else
                                       np.repeat(grey[..., None], 3, axis=2))
            bands = 3
        if bands != self.channels:
            raise BadImageError(path, 'bands', self._bands_message(path, bands))
        if self.dtype is not None and img.dtype.name != self.dtype:
            raise BadImageError(
                path, 'dtype',
                f'{path}: pixels are {img.dtype.name} but LoadRSImageFromFile(dtype='
                f'{self.dtype!r}) is configured. The CMID RGB pipeline (colour jitter, '
                'solarize, noise on a 0-255 scale) expects uint8: convert the files to 8 bit '
                f"(e.g. a per-band percentile stretch), or set dtype='{img.dtype.name}' (or "
                'None) with a pipeline and data_preprocessor mean/std for that value range.')
        if self.min_size is not None and (img.shape[0] < self.min_size[0]
                                          or img.shape[1] < self.min_size[1]):
            raise BadImageError(
                path, 'too_small',
                f'{path}: the image is {img.shape[0]}x{img.shape[1]} px (height x width), '
                f'smaller than min_size={self.min_size}. Remove or upsample such images, '
                "lower min_size and the crop size, or set on_error='skip' to skip them.")
        return img

    def _bands_message(self, path: str, bands: int) -> str:
        msg = (f'{path}: the image has {bands} band(s) ({_describe(bands)}) but '
               f'LoadRSImageFromFile(channels={self.channels}) is configured. ')
        if self.channels == 3 and bands in (1, 2):
            return msg + ("Set to_channels='rgb' to repeat the grey band into 3 channels, or "
                          'convert the files to RGB.')
        if self.channels == 3 and bands == 4:
            return msg + ("If the 4th band is alpha, set to_channels='rgb' to drop it; if it "
                          'is a real band (e.g. near-infrared), set channels=4 and give the '
                          'model 4 input channels (see below). ' + self._model_hint(4))
        return msg + (f'For {bands}-band data set channels={bands}; otherwise convert the '
                      f'files to {self.channels} band(s). ' + self._model_hint(bands))

    @staticmethod
    def _model_hint(bands: int) -> str:
        return (f'The model must then take {bands} channels too: model.backbone.in_channels='
                f'{bands}, model.mim_head.in_chans={bands}, and model.data_preprocessor mean/'
                f'std with {bands} values (to_rgb=False).')

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``; None (skipped) or an error for a bad file."""
        path = results['img_path']
        try:
            img = self._load(path)
        except BadImageError as e:
            if self.on_error == 'raise':
                raise
            self._count_skip(e.reason)
            print_log(f'skipped image ({e.reason}): {e}', logger='current',
                      level=logging.WARNING)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        if self.nodata is not None:
            results['nodata_mask'] = (np.zeros(img.shape[:2], bool)
                                      if self._nodata_mask is None else self._nodata_mask)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channels={self.channels}, '
                f'to_channels={self.to_channels!r}, dtype={self.dtype!r}, '
                f'min_size={self.min_size}, max_pixels={self.max_pixels}, '
                f'on_error={self.on_error!r}, '
                f'to_float32={self.to_float32}, tiff_reader={self.tiff_reader!r}, '
                f'bands={self.band_index}, nodata={self.nodata!r}, '
                f'nodata_mode={self.nodata_mode!r})')


def find_transforms(obj, types, _seen=None) -> list:
    """Every transform of ``types`` in a data loader, dataset or pipeline, depth first.

    Follows the dataset wrappers (``dataset`` / ``datasets``: mmengine's Repeat / ClassBalanced
    / Concat datasets, torch's ConcatDataset), a dataset's ``pipeline`` and the transforms
    nested in composite transforms (``transforms``: Compose, RandomApply, RandomChoice,
    KeyMapper...; ``pipelines``: mmpretrain's MultiView). Each object is visited once; a match
    is not searched further.

    Args:
        obj: a ``DataLoader``, dataset, ``Compose`` or transform.
        types: a class or tuple of classes, as for ``isinstance``.
    """
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, types):
        return [obj]
    found = []
    for name in ('dataset', 'datasets', 'pipeline', 'transforms', 'pipelines'):
        child = obj.__dict__.get(name) if hasattr(obj, '__dict__') else None
        if child is None:
            continue
        for item in (child if isinstance(child, (list, tuple)) else [child]):
            found.extend(find_transforms(item, types, seen))
    return found


def find_image_loaders(obj) -> Sequence[LoadRSImageFromFile]:
    """Every :class:`LoadRSImageFromFile` in a data loader / dataset (wrappers included)."""
    return find_transforms(obj, LoadRSImageFromFile)
