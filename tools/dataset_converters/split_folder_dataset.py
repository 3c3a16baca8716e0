"""Split a folder-per-class image dataset into train / val annotation files.

    python tools/dataset_converters/split_folder_dataset.py data/UCMerced_LandUse/Images \
        --out-dir data/UCMerced_LandUse/meta --train-ratio 0.8 --seed 0

Writes ``train.txt`` and ``val.txt`` (one ``<class folder>/<file> <label>`` line per image,
paths relative to the image folder, as mmpretrain's ``CustomDataset(ann_file=...)`` reads them)
and ``classes.txt`` (one class name per line, line i = label i). Labels follow the sorted
class folder names, as ``CustomDataset`` assigns them when it scans folders. The split is
stratified: each class gives ``ratio * n`` of its images (rounded half up) to train, at least
one to each split when the class has two or more images, drawn with a seeded random
permutation, so the same seed always gives the same split. The classification configs then use::

    data_root='data/UCMerced_LandUse', data_prefix='Images',
    ann_file='meta/train.txt'   # and 'meta/val.txt'
"""
import argparse
import math
import os
import os.path as osp
import random

# The extensions mmpretrain's CustomDataset accepts when it scans folders.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')


def split_folder_dataset(root: str, train_ratio: float = 0.8, seed: int = 0):
    """Stratified random split of the images under ``root/<class>/...``.

    Args:
        root: folder with one sub-folder per class (images may sit in nested folders).
        train_ratio: fraction of each class's images that go to train, in (0, 1).
        seed: seed of the per-class random permutation.

    Returns:
        tuple: ``(train, val, classes)``; ``train`` / ``val`` are sorted lists of
        ``(relative_path, label)`` and ``classes`` the sorted class folder names.
    """
    if not 0 < train_ratio < 1:
        raise ValueError(f'train_ratio must be in (0, 1), got {train_ratio}')
    if not osp.isdir(root):
        raise FileNotFoundError(f'{root!r} is not a folder: pass the folder that holds one '
                                'sub-folder per class')
    classes = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
    if not classes:
        raise ValueError(f'{root!r} has no sub-folders: expected one folder per class')
    rng = random.Random(seed)
    train, val = [], []
    for label, name in enumerate(classes):
        files = []
        for dirpath, _, filenames in os.walk(osp.join(root, name)):
            files += [osp.relpath(osp.join(dirpath, f), root).replace(os.sep, '/')
                      for f in filenames if f.lower().endswith(IMG_EXTENSIONS)]
        if not files:
            raise ValueError(f'class folder {osp.join(root, name)!r} has no image '
                             f'({", ".join(IMG_EXTENSIONS)}): remove it or add its images')
        if any(' ' in f for f in files):
            raise ValueError(f'{osp.join(root, name)!r} has file names with spaces, which the '
                             'annotation format "<path> <label>" cannot hold: rename them')
        files.sort()
        rng.shuffle(files)
        n_train = math.floor(train_ratio * len(files) + 0.5)
        if len(files) >= 2:
            n_train = min(max(n_train, 1), len(files) - 1)
        train += [(f, label) for f in files[:n_train]]
        val += [(f, label) for f in files[n_train:]]
    return sorted(train), sorted(val), classes


def write_split(out_dir: str, train: list, val: list, classes: list) -> None:
    """Write ``train.txt``, ``val.txt`` and ``classes.txt`` into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    for name, items in (('train', train), ('val', val)):
        with open(osp.join(out_dir, f'{name}.txt'), 'w') as f:
            f.writelines(f'{path} {label}\n' for path, label in items)
    with open(osp.join(out_dir, 'classes.txt'), 'w') as f:
        f.writelines(f'{c}\n' for c in classes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='folder with one sub-folder of images per class')
    parser.add_argument('--out-dir', help='where to write the files (default: ROOT/../meta)')
    parser.add_argument('--train-ratio', type=float, default=0.8,
                        help='fraction of each class for training (UCM: 0.8)')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the split')
    args = parser.parse_args(argv)
    out_dir = args.out_dir or osp.join(osp.dirname(osp.abspath(args.root)), 'meta')
    root_abs = osp.abspath(args.root)
    if osp.commonpath([root_abs, osp.abspath(out_dir)]) == root_abs:
        raise ValueError(f'--out-dir {out_dir!r} is inside {args.root!r}, where it would be '
                         'taken for a class folder next time: write the files elsewhere')
    train, val, classes = split_folder_dataset(args.root, args.train_ratio, args.seed)
    write_split(out_dir, train, val, classes)
    print(f'{len(classes)} classes, {len(train)} train / {len(val)} val images '
          f'(ratio {args.train_ratio}, seed {args.seed}) -> {out_dir}/{{train,val,classes}}.txt')


if __name__ == '__main__':
    main()
