"""Per-band mean, std and percentiles of every image under a folder (any band count / dtype).

Images are read exactly as ``LoadRSImageFromFile`` reads them in training (same TIFF reader,
band selection and band order), so the numbers match what the model sees. Pixels equal to
``--nodata`` in a band are left out of that band's statistics.

* mean / std: exact, over all valid pixels of all images (population std, ``ddof=0``),
  accumulated in float64;
* percentiles: exact for uint8 / uint16 / int16 images (per-band histograms of every value;
  numpy's default linear interpolation), approximate for float images (a seeded uniform
  sample of at most ``--max-samples`` pixels per band).

Writes a JSON file and prints the ``data_preprocessor`` lines to paste into a config::

    python tools/analysis_tools/band_stats.py data/s2_13band/img_dir \
        --tiff-reader tifffile --band-names B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 \
        --out data/s2_13band/band_stats.json
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np

from cmid_mm.datasets.rs_image_folder import IMAGE_EXTENSIONS
from cmid_mm.datasets.transforms.loading import LoadRSImageFromFile

DEFAULT_PERCENTILES = (1.0, 2.0, 50.0, 98.0, 99.0)


def list_images(folder: str, extensions: Sequence[str]) -> List[str]:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'band_stats: {folder!r} is not a folder')
    exts = tuple(e.lower() for e in extensions)
    found = sorted(
        osp.join(root, f) for root, _, files in os.walk(folder) for f in files
        if f.lower().endswith(exts))
    if not found:
        raise FileNotFoundError(f'band_stats: no file ending in {", ".join(exts)} under '
                                f'{folder!r}; pass --extensions')
    return found


class _Progress:
    """tqdm when installed, else mmengine's ProgressBar."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.bar = None
        if quiet:
            return
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc='band stats', unit='img', file=sys.stderr)
        except ImportError:
            from mmengine.utils import ProgressBar
            self.bar = ProgressBar(total, file=sys.stderr)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None and hasattr(self.bar, 'close'):
            self.bar.close()


def _percentile_from_hist(hist: np.ndarray, offset: int, q: float) -> float:
    """numpy's default (linear) percentile of the values counted in ``hist``."""
    n = int(hist.sum())
    pos = q / 100.0 * (n - 1)
    lo, frac = int(np.floor(pos)), pos - np.floor(pos)
    cum = np.cumsum(hist)
    v_lo = int(np.searchsorted(cum, lo + 1)) + offset  # value of the (lo)-th smallest
    v_hi = int(np.searchsorted(cum, min(lo + 1, n - 1) + 1)) + offset
    return float(v_lo + frac * (v_hi - v_lo))


def compute_band_stats(paths: Sequence[str],
                       tiff_reader: str = 'cv2',
                       bands: Optional[Sequence] = None,
                       band_names: Optional[Sequence[str]] = None,
                       nodata: Optional[float] = None,
                       percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                       max_samples: int = 1_000_000,
                       seed: int = 0,
                       quiet: bool = False) -> dict:
    """Statistics of ``paths`` as a dict (see the module docstring)."""
    probe = LoadRSImageFromFile(channels=len(bands) if bands else 1, dtype=None,
                                tiff_reader=tiff_reader, bands=bands, band_names=band_names)
    rng = np.random.default_rng(seed)
    sums = sq = count = hists = samples = None
    dtype = None
    progress = _Progress(len(paths), quiet)
    for path in paths:
        with open(path, 'rb') as f:
            content = f.read()
        probe._file_nodata = None
        img, _ = probe._select_and_fill(path, probe._decode(path, content))
        cube = img[..., None] if img.ndim == 2 else img
        n_bands = cube.shape[2]
        if sums is None:
            dtype = cube.dtype
            sums, sq = np.zeros(n_bands), np.zeros(n_bands)
            count = np.zeros(n_bands, np.int64)
            if dtype.kind in 'ui' and dtype.itemsize <= 2:
                hists = np.zeros((n_bands, 1 << (8 * dtype.itemsize)), np.int64)
            else:
                samples = [[] for _ in range(n_bands)]
        if n_bands != len(sums) or cube.dtype != dtype:
            raise ValueError(f'band_stats: {path} has {n_bands} band(s) of {cube.dtype}, the '
                             f'first image {len(sums)} of {dtype}; select the same bands '
                             '(--bands) or give one kind of image per folder')
        offset = -32768 if dtype == np.int16 else 0
        for b in range(n_bands):
            band = cube[..., b].ravel()
            if nodata is not None:
                band = band[~np.isnan(band)] if np.isnan(nodata) else band[
                    band.astype(np.float64) != float(nodata)]
            if band.size == 0:
                continue
            band64 = band.astype(np.float64)
            sums[b] += band64.sum()
            sq[b] += np.square(band64).sum()
            count[b] += band.size
            if hists is not None:
                hists[b] += np.bincount(band.astype(np.int64) - offset,
                                        minlength=hists.shape[1])
            else:  # float: keep a random share per image, so memory stays ~max_samples
                per_image = max(1, max_samples // len(paths))
                samples[b].append(band if band.size <= per_image else
                                  rng.choice(band, per_image, replace=False))
        progress.update()
    progress.close()
    if count is None or (count == 0).any():
        raise ValueError('band_stats: a band has no valid pixel (all nodata?)')
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    pct = {}
    for q in percentiles:
        if hists is not None:
            pct[f'{q:g}'] = [_percentile_from_hist(h, offset, q) for h in hists]
    if samples is not None:
        for b, parts in enumerate(samples):
            values = np.concatenate(parts)
            if values.size > max_samples:
                values = rng.choice(values, max_samples, replace=False)
            for q in percentiles:
                pct.setdefault(f'{q:g}', []).append(float(np.percentile(values, q)))
    names = ([band_names[i] for i in probe.band_index] if probe.band_index and band_names
             else list(band_names) if band_names and len(band_names) == len(mean)
             else [str(i) for i in range(len(mean))])
    return dict(
        bands=names, dtype=str(dtype), num_images=len(paths), num_pixels=count.tolist(),
        nodata=nodata, mean=mean.tolist(), std=std.tolist(), percentiles=pct,
        percentiles_exact=hists is not None)


def config_snippet(stats: dict) -> str:
    mean = ', '.join(f'{v:.2f}' for v in stats['mean'])
    std = ', '.join(f'{v:.2f}' for v in stats['std'])
    return ('# per-band statistics (tools/analysis_tools/band_stats.py), bands '
            f'{" ".join(stats["bands"])}\n'
            '# (pretraining; for mmseg use SegDataPreProcessor with bgr_to_rgb=False)\n'
            'model = dict(data_preprocessor=dict(\n'
            "    type='MultiBandSelfSupDataPreprocessor',\n"
            f'    mean=[{mean}],\n'
            f'    std=[{std}],\n'
            '    to_rgb=False))\n')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Per-band mean/std/percentiles of a folder.')
    p.add_argument('folder', help='folder of images (searched recursively)')
    p.add_argument('--out', help='JSON file to write (default: print only)')
    p.add_argument('--tiff-reader', default='tifffile', choices=['cv2', 'tifffile'])
    p.add_argument('--band-names', nargs='+', help='names of the bands in file order')
    p.add_argument('--bands', nargs='+', help='bands to keep: indices or names')
    p.add_argument('--nodata', type=float, help='value left out of the statistics (nan ok)')
    p.add_argument('--percentiles', type=float, nargs='+', default=list(DEFAULT_PERCENTILES))
    p.add_argument('--max-samples', type=int, default=1_000_000,
                   help='pixels per band kept for float percentiles')
    p.add_argument('--extensions', nargs='+', default=list(IMAGE_EXTENSIONS) + ['.npy'])
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    bands = None if args.bands is None else [int(b) if b.isdigit() else b for b in args.bands]
    stats = compute_band_stats(
        list_images(args.folder, args.extensions), tiff_reader=args.tiff_reader, bands=bands,
        band_names=args.band_names, nodata=args.nodata, percentiles=args.percentiles,
        max_samples=args.max_samples, quiet=args.quiet)
    print(f'{stats["num_images"]} images, {stats["dtype"]}, {len(stats["mean"])} bands')
    for i, name in enumerate(stats['bands']):
        pct = ' '.join(f'p{q}={v[i]:.1f}' for q, v in stats['percentiles'].items())
        print(f'{name:>6} mean={stats["mean"][i]:10.3f} std={stats["std"][i]:10.3f} {pct}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(stats, f, indent=1)
        print(f'wrote {args.out}')
    print(config_snippet(stats))
    return stats


if __name__ == '__main__':
    main()
