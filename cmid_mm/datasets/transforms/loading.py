"""Load remote-sensing images and refuse the ones that do not fit the configured data.

mmcv's ``LoadImageFromFile`` decodes with OpenCV's ``IMREAD_COLOR``, which silently turns
every file into 8-bit, 3-channel BGR: a grey image is replicated, the alpha band of an RGBA
image and the 4th band of an RGB+NIR TIFF are dropped, and 16-bit data are divided by 256.
A truncated PNG or JPEG makes OpenCV 4.11 return ``None`` (measured on this stack), which mmcv
turns into ``AssertionError: failed to load image`` (gone under ``python -O``), and a TIFF with
more than 4 bands in one page cannot be decoded by OpenCV at all.

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

# Why a sample was skipped; the columns of the skip counters.
SKIP_REASONS = ('unreadable', 'bands', 'dtype', 'too_small')
# Rows of the skip counters: 0 = the main process, 1.. = data-loader worker id + 1. Each
# process writes only its own row, so concurrent workers never lose an increment (more than
# MAX_WORKER_ROWS - 1 workers share rows modulo that number).
MAX_WORKER_ROWS = 65
TIFF_EXTENSIONS = ('.tif', '.tiff')


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
    * ``.npy``: a numpy array ``(H, W)`` or ``(H, W, bands)`` (no pickles).

    Checks, in this order, each raising :class:`BadImageError` naming the file:

    * the file can be read and decoded (truncated, empty, missing, not an image);
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
        on_error (str): ``'raise'`` (default): stop at the first bad file. ``'skip'``: return
            None (mmengine's ``BaseDataset`` then loads a random other index, up to its
            ``max_refetch`` times), log a warning with the file and the reason, and count it
            (see :meth:`skip_counts` and ``SkippedImagesHook``).
        to_float32 (bool): convert the image to float32.
        imdecode_backend (str): only ``'cv2'``.
        backend_args (dict, optional): file backend arguments (mmengine ``fileio``).
    """

    def __init__(self,
                 channels: int = 3,
                 to_channels: Optional[str] = None,
                 dtype: Optional[str] = 'uint8',
                 min_size: Optional[Union[int, Tuple[int, int]]] = None,
                 on_error: str = 'raise',
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
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
        self.channels = channels
        self.to_channels = to_channels
        self.dtype = dtype
        self.min_size = min_size
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

    def _decode(self, path: str, content: bytes) -> np.ndarray:
        size = len(content)
        if size == 0:
            raise self._unreadable(path, 'the file is empty (0 bytes)')
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
        if ext in TIFF_EXTENSIONS:
            ok, pages = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
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
                    'Store the bands as a multi-page TIFF (one band per page, e.g. '
                    'cv2.imwritemulti) or as a .npy array (H, W, bands), which '
                    'LoadRSImageFromFile reads')
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise self._unreadable(path, f'OpenCV cannot decode its {size} bytes: the file is '
                                   'truncated, corrupt or not an image')
        return img

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
        img = self._decode(path, content)
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
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channels={self.channels}, '
                f'to_channels={self.to_channels!r}, dtype={self.dtype!r}, '
                f'min_size={self.min_size}, on_error={self.on_error!r}, '
                f'to_float32={self.to_float32})')


def find_image_loaders(obj, _seen=None) -> Sequence[LoadRSImageFromFile]:
    """Every :class:`LoadRSImageFromFile` in a data loader / dataset (wrappers included)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, LoadRSImageFromFile):
        return [obj]
    found = []
    for name in ('dataset', 'datasets', 'pipeline', 'transforms'):
        child = obj.__dict__.get(name) if hasattr(obj, '__dict__') else None
        if child is None:
            continue
        for item in (child if isinstance(child, (list, tuple)) else [child]):
            found.extend(find_image_loaders(item, seen))
    return found
