"""Cut ``tests/data/seg_tiny``: real building-footprint segmentation tiles (SpaceNet, Atlanta).

Source: the SpaceNet panchromatic tile (900x900 px at 0.5 m, 8 bit) and its building mask
(1 = building) from ``solaris==0.4.0`` (see the README of the source collection). The split is
spatial: training tiles come from the left half of the scene, validation tiles from the right
half, so no pixel is in both. In each half the tiles of a regular grid with the most building
pixels are kept (ties by position): deterministic, no randomness.

Output, mmseg's generic ``img_dir/ann_dir`` layout (``BaseSegDataset``, ``.png`` both,
``reduce_zero_label=False``; classes ``('background', 'building')``)::

    seg_tiny/img_dir/{train,val}/sn_y{top}_x{left}.png   single-channel pan image
    seg_tiny/ann_dir/{train,val}/sn_y{top}_x{left}.png   0 = background, 1 = building
    seg_tiny/README.md                                   provenance and licence

    python tools/dataset_converters/make_seg_tiny.py \
        --src /data/rs_real --out tests/data/seg_tiny
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image

TILE = 128  # tile side, pixels
SPLITS = dict(train=(0, 4), val=(1, 2))  # split: (half of the scene: 0 left / 1 right, tiles)

README = """# seg_tiny: real building segmentation tiles for the downstream segmentation tests

{n} tiles of {t}x{t} px cut by `tools/dataset_converters/make_seg_tiny.py` (deterministic)
from a real SpaceNet scene. mmseg's generic layout (`BaseSegDataset`, `img_suffix='.png'`,
`seg_map_suffix='.png'`, `reduce_zero_label=False`, classes `('background', 'building')`):

- `img_dir/{{train,val}}/*.png`: panchromatic image, 1 channel, 8 bit (1-99 % stretch);
  mmcv loads it as 3 equal channels.
- `ann_dir/{{train,val}}/*.png`: 0 = background, 1 = building footprint (human-made labels).

Spatial split: `train` tiles come from the left half of the scene (x < {half}), `val` tiles
from the right half. For pipeline tests only, not a benchmark.

## Source and licence

SpaceNet pan tile, Atlanta, 900x900 px at 0.5 m, and its building-footprint mask, from the
`solaris==0.4.0` wheel (PyPI), files `solaris/data/sample_geotiff.tif` and
`solaris/data/sample_fp_mask_from_geojson.tif`.

**Licence: CC BY-SA 4.0. Attribution: "SpaceNet on AWS".** These derived tiles are
distributed under the same licence.

## Tiles

File names are `sn_y{{top}}_x{{left}}.png`: the pixel coordinates of the tile's top-left
corner in the 900x900 source.

| split | file | top | left | building pixels (%) |
|---|---|---|---|---|
"""


def tiles_of_half(mask: np.ndarray, half: int, count: int):
    """The ``count`` grid tiles of one half with the most building pixels.

    Args:
        mask: (H, W) uint8 building mask, 1 = building.
        half: 0 = left half (x < W // 2), 1 = right half.
        count: number of tiles to return.

    Returns:
        list of (top, left, building fraction), sorted by top then left.
    """
    h, w = mask.shape
    x0, x1 = (0, w // 2) if half == 0 else (w // 2, w)
    cands = []
    for top in range(0, h - TILE + 1, TILE):
        for left in range(x0, x1 - TILE + 1, TILE):
            frac = float(mask[top:top + TILE, left:left + TILE].mean())
            cands.append((-frac, top, left))
    best = sorted(cands)[:count]
    return sorted((top, left, -neg) for neg, top, left in best)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True,
                        help='folder with spacenet/buildings_{img,mask}.png')
    parser.add_argument('--out', default='tests/data/seg_tiny')
    args = parser.parse_args(argv)
    img = np.array(Image.open(osp.join(args.src, 'spacenet', 'buildings_img.png')))
    mask = np.array(Image.open(osp.join(args.src, 'spacenet', 'buildings_mask.png')))
    if img.shape != mask.shape or set(np.unique(mask)) - {0, 1}:
        raise ValueError(f'expected a single-channel image and a 0/1 mask of the same size, '
                         f'got {img.shape} and {mask.shape} with values {np.unique(mask)}')
    rows = []
    for split, (half, count) in SPLITS.items():
        for sub in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(args.out, sub, split), exist_ok=True)
        for top, left, frac in tiles_of_half(mask, half, count):
            name = f'sn_y{top:04d}_x{left:04d}.png'
            window = (slice(top, top + TILE), slice(left, left + TILE))
            Image.fromarray(img[window]).save(osp.join(args.out, 'img_dir', split, name))
            Image.fromarray(mask[window]).save(osp.join(args.out, 'ann_dir', split, name))
            rows.append(f'| {split} | {name} | {top} | {left} | {100 * frac:.1f} |')
    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(README.format(n=len(rows), t=TILE, half=mask.shape[1] // 2))
        f.write('\n'.join(rows) + '\n')
    print(f'wrote {len(rows)} tiles to {args.out}')


if __name__ == '__main__':
    main()
