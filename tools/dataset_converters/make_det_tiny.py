"""Cut ``tests/data/det_tiny``: real tree boxes (NEON airborne RGB) in DIOR's folder layout.

Source: two NEON RGB scenes at 10 cm (Yellowstone) with hand-drawn tree boxes, from the
``deepforest==2.1.0`` wheel (see the README of the source collection). The train and val tiles
come from one scene, the test tile from the other (a whole scene is held out). In each scene
the tiles of a regular grid that fully contain the most boxes are kept (ties by position):
deterministic, no randomness.

A box is kept in a tile if at least half of its area lies inside; it is clipped to the tile.
Source boxes are ``[xmin, ymin, xmax, ymax]`` pixel edges (0-based, max exclusive); the XML
uses the VOC convention that mmdet's ``XMLDataset`` / ``VOCMetric`` expect (1-based,
inclusive): ``xmin + 1, ymin + 1, xmax, ymax``. The object name is ``tree``, which is not a
DIOR class: tests pass ``metainfo=dict(classes=('tree', ))``.

Output (DIOR layout, see cmid_mm/downstream/det_datasets.py)::

    det_tiny/JPEGImages-trainval/<id>.jpg, JPEGImages-test/<id>.jpg
    det_tiny/Annotations/Horizontal Bounding Boxes/<id>.xml
    det_tiny/ImageSets/Main/{train,val,test}.txt
    det_tiny/README.md

    python tools/dataset_converters/make_det_tiny.py \
        --src /data/rs_real --out tests/data/det_tiny
"""
import argparse
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

TILE = 256  # tile side, pixels
ANN_SUBDIR = osp.join('Annotations', 'Horizontal Bounding Boxes')
# (scene file, id prefix, image folder, [(split, number of tiles)])
SCENES = (
    ('2019_YELL_2_528000_4978000_image_crop2.png', 'neon528', 'JPEGImages-trainval',
     [('train', 2), ('val', 1)]),
    ('2019_YELL_2_541000_4977000_image_crop.png', 'neon541', 'JPEGImages-test', [('test', 1)]),
)

README = """# det_tiny: real tree boxes in DIOR's layout, for the downstream detection tests

{n} RGB tiles of {t}x{t} px (JPEG, quality 90) with hand-drawn tree boxes, cut by
`tools/dataset_converters/make_det_tiny.py` (deterministic) and written in DIOR's layout:
`JPEGImages-trainval/`, `JPEGImages-test/`, `Annotations/Horizontal Bounding Boxes/*.xml`
(VOC style, 1-based inclusive pixel coordinates), `ImageSets/Main/{{train,val,test}}.txt`.
The object name is `tree` (not a DIOR class: tests pass `metainfo=dict(classes=('tree', ))`).
`train` and `val` tiles come from one scene, the `test` tile from another (held-out scene).
A box is kept if at least half of it lies in the tile, and clipped to the tile.
For pipeline tests only, not a benchmark.

## Source and licence

NEON airborne RGB orthophotos at 10 cm, Yellowstone (`2019_YELL_2_528000_4978000_image_crop2`,
2299x2472 px, 574 trees; `2019_YELL_2_541000_4977000_image_crop`, 1249x1035 px, 279 trees)
with hand-drawn tree boxes, from the `deepforest==2.1.0` wheel (PyPI), files under
`deepforest/data/`. **Licence: NEON data CC0; cite the National Ecological Observatory
Network (NEON).**

## Tiles

Ids are `{{scene}}_y{{top}}_x{{left}}`: the tile's top-left corner in the source scene.

| split | id | source scene | top | left | boxes |
|---|---|---|---|---|---|
"""


def boxes_in_tile(boxes: np.ndarray, top: int, left: int) -> np.ndarray:
    """Boxes with at least half their area in the tile, clipped, in tile pixel edges.

    Args:
        boxes: (N, 4) ``[xmin, ymin, xmax, ymax]`` source pixel edges.
        top, left: tile corner in source pixels.

    Returns:
        (M, 4) float array of clipped boxes in tile coordinates (0..TILE).
    """
    shifted = boxes - np.array([left, top, left, top], np.float64)
    clipped = np.clip(shifted, 0, TILE)
    area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (inside >= 0.5 * area) & (clipped[:, 2] - clipped[:, 0] >= 2) \
        & (clipped[:, 3] - clipped[:, 1] >= 2)
    return clipped[keep]


def best_tiles(boxes: np.ndarray, height: int, width: int, count: int):
    """The ``count`` grid tiles that fully contain the most boxes, sorted by position."""
    cands = []
    for top in range(0, height - TILE + 1, TILE):
        for left in range(0, width - TILE + 1, TILE):
            full = ((boxes[:, 0] >= left) & (boxes[:, 2] <= left + TILE)
                    & (boxes[:, 1] >= top) & (boxes[:, 3] <= top + TILE)).sum()
            cands.append((-int(full), top, left))
    return sorted((top, left) for _, top, left in sorted(cands)[:count])


def voc_xml(file_name: str, boxes: np.ndarray) -> ET.ElementTree:
    """A VOC annotation of ``tree`` boxes (tile pixel edges -> 1-based inclusive)."""
    root = ET.Element('annotation')
    ET.SubElement(root, 'filename').text = file_name
    size = ET.SubElement(root, 'size')
    for tag, value in (('width', TILE), ('height', TILE), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    for x0, y0, x1, y1 in boxes:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = 'tree'
        ET.SubElement(obj, 'difficult').text = '0'
        bnd = ET.SubElement(obj, 'bndbox')
        for tag, value in (('xmin', int(x0) + 1), ('ymin', int(y0) + 1), ('xmax', int(x1)),
                           ('ymax', int(y1))):
            ET.SubElement(bnd, tag).text = str(value)
    ET.indent(root)
    return ET.ElementTree(root)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True,
                        help='folder with neon/*.png and neon/tree_boxes.json')
    parser.add_argument('--out', default='tests/data/det_tiny')
    args = parser.parse_args(argv)
    with open(osp.join(args.src, 'neon', 'tree_boxes.json')) as f:
        records = {r['file']: r for r in json.load(f)}
    os.makedirs(osp.join(args.out, ANN_SUBDIR), exist_ok=True)
    os.makedirs(osp.join(args.out, 'ImageSets', 'Main'), exist_ok=True)
    rows, splits = [], {}
    for scene, prefix, img_dir, split_counts in SCENES:
        image = Image.open(osp.join(args.src, 'neon', scene)).convert('RGB')
        boxes = np.array(records[scene]['boxes'], np.float64)
        tiles = best_tiles(boxes, image.height, image.width, sum(n for _, n in split_counts))
        os.makedirs(osp.join(args.out, img_dir), exist_ok=True)
        for split, n in split_counts:
            for top, left in tiles[:n]:
                img_id = f'{prefix}_y{top:04d}_x{left:04d}'
                tile = image.crop((left, top, left + TILE, top + TILE))
                tile.save(osp.join(args.out, img_dir, img_id + '.jpg'), quality=90)
                kept = boxes_in_tile(boxes, top, left)
                voc_xml(img_id + '.jpg', kept).write(
                    osp.join(args.out, ANN_SUBDIR, img_id + '.xml'), encoding='utf-8')
                splits.setdefault(split, []).append(img_id)
                rows.append(f'| {split} | {img_id} | {scene} | {top} | {left} | {len(kept)} |')
            tiles = tiles[n:]
    for split, ids in splits.items():
        with open(osp.join(args.out, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(README.format(n=len(rows), t=TILE))
        f.write('\n'.join(rows) + '\n')
    print(f'wrote {len(rows)} tiles to {args.out}')


if __name__ == '__main__':
    main()
