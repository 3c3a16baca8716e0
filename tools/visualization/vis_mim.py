"""Masked image modelling pictures of a CMID checkpoint on real images.

    python tools/visualization/vis_mim.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \
        [--out-dir work_dirs/vis] [--seed 0] [--scale 2] [--bands 2 1 0]

Each IMAGE goes through the config's own train pipeline (two random crops A and B with their
augmentations and block masks), the model's data preprocessor normalises the views, and the
student of CHECKPOINT (a full CMID training checkpoint, eval mode) reconstructs both masked
views. One PNG per image, ``<out-dir>/mim_<image name>.png``: a row per view with

    target | masked input (mean fill, as the student sees it) | reconstruction |
    reconstruction pasted into the masked blocks (yellow: block edges)

all de-normalised with the data preprocessor's mean / std.

An image's PNG depends on that image, --seed and CHECKPOINT only: the RNGs are reseeded for
each image from --seed and the image's file name, and each image is normalised and
reconstructed on its own (a batch of 1). Drawing it alone or among other images, in any
order, gives the same PNG bit for bit (on one machine, with one thread count).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import cv2  # noqa: E402
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the CMID pretraining config of the checkpoint')
    parser.add_argument('checkpoint', help='CMID training checkpoint (epoch_*.pth / iter_*.pth)')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', default='work_dirs/vis', help='folder for the PNGs')
    parser.add_argument('--seed', type=int, default=0,
                        help="seed of crops, flips and masks (with each image's file name)")
    parser.add_argument('--scale', type=int, default=2,
                        help='integer enlargement of the panels (nearest neighbour)')
    parser.add_argument('--bands', type=int, nargs=3, help='channels shown as RGB '
                        '(multispectral data; default the first three)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.depth=18')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import cmid_mm  # noqa: F401  (registers CMID; safe loading of Runner checkpoints)
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import batch_pictures, build_cmid, pipeline_batch

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_cmid(cfg, args.checkpoint, args.device)
    data = pipeline_batch(cfg, args.images, args.seed)
    pictures = batch_pictures(model, data, len(args.images), args.scale, args.bands,
                              matches=False)
    os.makedirs(args.out_dir, exist_ok=True)
    for path, grid in zip(args.images, pictures['mim']):
        out = osp.join(args.out_dir, f'mim_{osp.splitext(osp.basename(path))[0]}.png')
        cv2.imwrite(out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(f'{out}: {grid.shape[1]}x{grid.shape[0]} px')


if __name__ == '__main__':
    main()
