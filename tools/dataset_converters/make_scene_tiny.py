"""Make the tiny folder-per-class scene dataset of the tests from a real labelled tile.

    python tools/dataset_converters/make_scene_tiny.py \
        --img /data/rs_real/spacenet/buildings_img.png \
        --mask /data/rs_real/spacenet/buildings_mask.png \
        --out tests/data/scene_tiny

The tile (SpaceNet Atlanta, 900x900 px pan at 0.5 m, CC BY-SA 4.0, "SpaceNet on AWS") comes with
a human-drawn building footprint mask. It is cut into non-overlapping ``--patch`` px patches;
a patch is ``building`` if at least ``--min-building`` of its pixels are footprint and
``no_building`` if none are (patches in between are not used). The left half of the tile
gives ``train/``, the right half ``val/`` (no patch crosses the middle), so train and val are
spatially separated. Per split and class, ``--per-class`` patches are kept: the buildings with
the largest footprint share, the background patches at evenly spaced positions of the list of
candidates (row-major order). Patches are written as 8-bit greyscale PNG.
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image

CLASSES = ('building', 'no_building')


def grid_patches(width: int, x0: int, x1: int, height: int, patch: int):
    """Top-left corners ``(x, y)`` of non-overlapping patches inside columns ``[x0, x1)``."""
    return [(x, y) for y in range(0, height - patch + 1, patch)
            for x in range(x0, x1 - patch + 1, patch)]


def select(img: np.ndarray, mask: np.ndarray, x0: int, x1: int, patch: int,
           per_class: int, min_building: float) -> dict:
    """Pick ``per_class`` patch corners per class in columns ``[x0, x1)``.

    Args:
        img: (H, W) uint8 image (only its shape is used here).
        mask: (H, W) footprint mask, non-zero = building.
        min_building: footprint fraction (0-1) from which a patch counts as ``building``.

    Returns:
        dict: class name -> list of ``(x, y)`` top-left corners in image pixels.
    """
    height, width = img.shape[:2]
    frac = {xy: float((mask[xy[1]:xy[1] + patch, xy[0]:xy[0] + patch] > 0).mean())
            for xy in grid_patches(width, x0, x1, height, patch)}
    building = sorted((xy for xy, f in frac.items() if f >= min_building),
                      key=lambda xy: (-frac[xy], xy[1], xy[0]))
    empty = [xy for xy, f in frac.items() if f == 0]
    for name, cands in (('building', building), ('no_building', empty)):
        if len(cands) < per_class:
            raise ValueError(f'columns [{x0}, {x1}) give only {len(cands)} {name!r} patches of '
                             f'{patch} px (need {per_class}): lower --per-class or '
                             '--min-building, or use a smaller --patch')
    picks = np.linspace(0, len(empty) - 1, per_class).round().astype(int)
    return {'building': building[:per_class], 'no_building': [empty[i] for i in picks]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--img', required=True, help='greyscale or RGB tile (PNG)')
    parser.add_argument('--mask', required=True, help='building mask of the tile, 1 = building')
    parser.add_argument('--out', default='tests/data/scene_tiny', help='output folder')
    parser.add_argument('--patch', type=int, default=64, help='patch side in pixels')
    parser.add_argument('--per-class', type=int, default=10, help='patches per class and split')
    parser.add_argument('--min-building', type=float, default=0.1,
                        help='footprint fraction (0-1) for the "building" class')
    args = parser.parse_args(argv)

    img = np.array(Image.open(args.img))
    mask = np.array(Image.open(args.mask))
    if img.shape[:2] != mask.shape[:2]:
        raise ValueError(f'{args.img} is {img.shape[:2]} but {args.mask} is {mask.shape[:2]}: '
                         'the mask must cover the image pixel for pixel')
    mid = img.shape[1] // 2
    for split, (x0, x1) in (('train', (0, mid)), ('val', (mid, img.shape[1]))):
        chosen = select(img, mask, x0, x1, args.patch, args.per_class, args.min_building)
        for name in CLASSES:
            folder = osp.join(args.out, split, name)
            os.makedirs(folder, exist_ok=True)
            for x, y in chosen[name]:
                crop = img[y:y + args.patch, x:x + args.patch]
                Image.fromarray(crop).save(osp.join(folder, f'atlanta_x{x:03d}_y{y:03d}.png'),
                                           optimize=True)
            print(f'{split}/{name}: {len(chosen[name])} patches')


if __name__ == '__main__':
    main()
