"""Cut a tiny LEVIR-CD-style change-detection folder from the semi-synthetic SpaceNet pair.

Source (900x900 px, 0.5 m, Atlanta, single-band panchromatic): ``buildings_t2.png`` is a real
SpaceNet tile, ``buildings_t1.png`` the same tile with every labelled building replaced by
nearby real background (plus gain / gamma / noise / blur / sub-pixel shift), and
``buildings_mask.png`` marks the changed pixels (1 = changed). Output::

    OUT/{train,val,test}/{A,B,label}/y{top}_x{left}.png     A = t1, B = t2, label 0 / 255

Tiles are 64x64 px on the regular 64-px grid. The splits come from separate horizontal bands
of the tile (train rows 0-383, val 448-703, test 768-895; one tile row of gap between bands
so no split touches another), and each split takes the ``--per-split`` tiles of its band with
the largest changed fraction (ties broken by position), so every tile holds both classes.
Deterministic: running it twice gives the same files. A/B stay single-band (grey PNG; the
loader replicates them to 3 channels).

    python tools/dataset_converters/make_cd_tiny.py \
        --src /data/rs_real/change_detection --out tests/data/levir_cd_tiny
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image

TILE = 64  # tile side, pixels
# split -> (first tile row, last tile row) of its band on the 64-px grid (rows are inclusive)
BANDS = {'train': (0, 5), 'val': (7, 10), 'test': (12, 13)}

README = """# levir_cd_tiny: a tiny LEVIR-CD-style folder for pipeline tests

**Semi-synthetic, for pipeline checks only, never a benchmark number.** {n} pairs of
{t}x{t} px in the LEVIR-CD layout (`{{train,val,test}}/{{A,B,label}}/*.png`): `A` = date 1,
`B` = date 2 (single-band 8-bit PNG, panchromatic; loaders replicate it to 3 channels),
`label` = 0 unchanged / 255 changed. Made by `tools/dataset_converters/make_cd_tiny.py`
(deterministic) from `change_detection/buildings_{{t1,t2,mask}}.png`.

## Provenance and licence

Derived from the SpaceNet sample tile shipped in the `solaris==0.4.0` wheel (PyPI; files
`solaris/data/sample_geotiff.tif` and `sample_fp_mask_from_geojson.tif`): a 900x900 px
panchromatic tile of Atlanta at 0.5 m with building footprints. Date 2 (`B`) is the real
tile; date 1 (`A`) is the same tile with every labelled building replaced by nearby real
background plus gain / gamma / noise / blur / sub-pixel shift; the label is the dilated
footprints (changed = buildings that "appear"). Shadows of the removed buildings remain in `A`.

Data: SpaceNet on AWS, licensed **CC BY-SA 4.0** (https://creativecommons.org/licenses/by-sa/4.0/).
These derived files are distributed under the same licence. Attribution: "SpaceNet on AWS".

## Tiles

Names are `y{{top}}_x{{left}}.png`, the pixel position of the tile's top-left corner in the
900x900 source. Splits are disjoint horizontal bands of the source (train rows 0-383, val
448-703, test 768-895), tiles are those with the most changed pixels in their band.

| split | file | changed fraction |
|---|---|---|
{rows}
"""


def pick_tiles(mask: np.ndarray, rows: tuple, k: int) -> list:
    """The ``k`` tiles (top, left) of tile rows ``rows`` with the largest changed fraction."""
    cols = mask.shape[1] // TILE
    cands = []
    for r in range(rows[0], rows[1] + 1):
        for c in range(cols):
            frac = float(mask[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE].mean())
            cands.append((-frac, r, c))
    cands.sort()
    picked = [(r * TILE, c * TILE, -f) for f, r, c in cands[:k]]
    if any(f <= 0 or f >= 1 for _, _, f in picked):
        raise ValueError(f'band {rows}: fewer than {k} tiles hold both classes')
    return picked


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True,
                        help='folder with buildings_{t1,t2,mask}.png')
    parser.add_argument('--out', default='tests/data/levir_cd_tiny', help='output folder')
    parser.add_argument('--per-split', type=int, default=4, help='tiles per split')
    args = parser.parse_args(argv)

    imgs = {}
    for name in ('t1', 't2', 'mask'):
        path = osp.join(args.src, f'buildings_{name}.png')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} does not exist: --src must hold '
                                    'buildings_{t1,t2,mask}.png')
        imgs[name] = np.array(Image.open(path).convert('L'))
    if len({a.shape for a in imgs.values()}) != 1:
        raise ValueError(f'sources differ in size: { {k: v.shape for k, v in imgs.items()} }')
    mask = (imgs['mask'] > 0).astype(np.uint8)

    rows = []
    for split, band in BANDS.items():
        for sub in ('A', 'B', 'label'):
            os.makedirs(osp.join(args.out, split, sub), exist_ok=True)
        for top, left, frac in pick_tiles(mask, band, args.per_split):
            win = (slice(top, top + TILE), slice(left, left + TILE))
            fname = f'y{top:04d}_x{left:04d}.png'
            Image.fromarray(imgs['t1'][win]).save(osp.join(args.out, split, 'A', fname))
            Image.fromarray(imgs['t2'][win]).save(osp.join(args.out, split, 'B', fname))
            Image.fromarray(mask[win] * 255).save(osp.join(args.out, split, 'label', fname))
            rows.append(f'| {split} | {fname} | {frac:.3f} |')
    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(README.format(n=len(rows), t=TILE, rows='\n'.join(rows)))
    print(f'wrote {len(rows)} pairs of {TILE}x{TILE} px to {args.out}')


if __name__ == '__main__':
    main()
