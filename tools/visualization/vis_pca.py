"""Dense features as colours: PCA of the last-stage feature map, side by side with the image.

    python tools/visualization/vis_pca.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \
        [--size 384] [--source student|teacher] [--mode bilinear|nearest] \
        [--per-image] [--out work_dirs/vis/pca.png]

Every IMAGE is read by the loading step of the config's train pipeline (BGR for colour),
optionally resized to ``--size`` x ``--size`` (bicubic; a bigger input gives a finer feature
map: stride 32 -> 128 px = 4 x 4 cells, 384 px = 12 x 12), normalised by the model's data
preprocessor (the config's mean / std, BGR -> RGB) and passed through the chosen backbone of
CHECKPOINT in eval mode. The last output map (C x h x w) is reduced to 3 channels by PCA fitted
on its pixels -- on the pixels of all images together unless --per-image, so one colour means
one kind of feature in every row --, each component is min-max scaled to [0, 1] and the map is
upsampled to the image size with --mode (bilinear by default; nearest shows the cells).
One PNG of image | PCA -> RGB pairs, --per-row pairs per row.

What depends on what (on one machine, one thread count):

- each image is normalised and passed through the backbone on its own (a batch of 1), so its
  feature map is the same bit for bit whatever other images are given;
- with --per-image, an image's pair of panels is a function of that image alone: the same
  pixels when it is drawn alone or among other images, in any order;
- by default (one PCA for all images) the colours are fitted on every image of the call, so
  they change with the set of images and, by float rounding, with their order; the same
  command (same images, same order) gives the same picture.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the CMID pretraining config of the checkpoint')
    parser.add_argument('checkpoint', help='CMID training checkpoint (epoch_*.pth / iter_*.pth)')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--size', type=int,
                        help='resize every image to SIZE x SIZE first (default: keep its size; '
                        'all images must then have one size)')
    parser.add_argument('--source', choices=['student', 'teacher'], default='student',
                        help='student backbone or EMA teacher backbone')
    parser.add_argument('--mode', choices=['bilinear', 'nearest'], default='bilinear',
                        help='upsampling of the PCA map to the image size')
    parser.add_argument('--per-image', action='store_true',
                        help='fit one PCA per image instead of one for all images')
    parser.add_argument('--per-row', type=int, default=2,
                        help='image | PCA pairs per row of the picture')
    parser.add_argument('--scale', type=int, default=1,
                        help='integer enlargement of the panels (nearest neighbour)')
    parser.add_argument('--bands', type=int, nargs=3, help='channels shown as RGB')
    parser.add_argument('--out', default='work_dirs/vis/pca.png', help='output PNG')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.depth=18')
    return parser.parse_args(argv)


def loader(cfg):
    """The loading transform of the config's train pipeline (its first ``Load*`` step), so
    files are decoded, checked and band-ordered as in training; mmcv's LoadImageFromFile if
    the pipeline has none."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    steps = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in steps:
        if isinstance(step, dict) and str(step.get('type', '')).split('.')[-1].startswith(
                'Load'):
            return TRANSFORMS.build(step.copy())
    return TRANSFORMS.build(dict(type='LoadImageFromFile'))


def load_images(paths, load, size=None):
    """(B, N, H, W) tensor in the channel order of the pipeline (BGR for colour files)."""
    import mmcv

    imgs = []
    for p in paths:
        if not osp.isfile(p):
            raise FileNotFoundError(f'image {p!r} does not exist')
        results = load(dict(img_path=p, sample_idx=0))
        if results is None:
            raise ValueError(f'the loading step {load!r} of the config rejected {p!r}')
        img = results['img']
        if size:
            img = mmcv.imresize(img, (size, size), interpolation='bicubic', backend='pillow')
        imgs.append(img if img.ndim == 3 else img[..., None])
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise ValueError(f'the images have different sizes {sorted(shapes)}: pass --size to '
                         'resize them to one size')
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def features(model, images, source='student'):
    """Normalised inputs (B, N, H, W) and the last backbone map (B, C, h, w), each image
    normalised and passed through the backbone on its own (a batch of 1), so an image's map
    does not depend on the other images (kernels may depend on the batch size)."""
    backbone = model.backbone if source == 'student' else model.teacher.module.backbone
    inputs, feats = [], []
    for i in range(len(images)):
        x = model.data_preprocessor(dict(inputs=images[i:i + 1], data_samples=None),
                                    False)['inputs']
        inputs.append(x)
        feats.append(backbone(x)[-1])
    return torch.cat(inputs), torch.cat(feats)


def main(argv=None):
    args = parse_args(argv)
    import cmid_mm  # noqa: F401
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import (build_cmid, channel_stats, denormalize,
                                       float_to_uint8, pca_rgb, titled_grid, upscale)

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_cmid(cfg, args.checkpoint, args.device)
    images = load_images(args.images, loader(cfg), args.size).to(args.device)
    inputs, feat = features(model, images, args.source)
    size = tuple(inputs.shape[-2:])
    if args.per_image:
        fitted = [pca_rgb(f, size, args.mode, return_variance=True) for f in feat]
        rgbs, ratios = [r for r, _ in fitted], [v for _, v in fitted]
    else:
        rgb, ratio = pca_rgb(feat, size, args.mode, return_variance=True)
        rgbs, ratios = list(rgb), [ratio] * len(feat)
    mean, std = channel_stats(model.data_preprocessor)
    h, w = feat.shape[-2:]
    pairs = []
    for path, x, rgb, ratio in zip(args.images, inputs, rgbs, ratios):
        name = osp.splitext(osp.basename(path))[0]
        pairs += [(name[:24], upscale(denormalize(x, mean, std, args.bands), args.scale)),
                  (f'{args.source} {h}x{w} PCA, {args.mode}',
                   upscale(float_to_uint8(rgb), args.scale))]
        if args.per_image:
            print(f'{name}: variance explained by the 3 components '
                  f'{np.round(ratio, 3).tolist()}')
    if not args.per_image:
        print(f'variance explained by the 3 components {np.round(ratios[0], 3).tolist()}')
    step = 2 * max(1, args.per_row)
    grid = titled_grid([pairs[i:i + step] for i in range(0, len(pairs), step)])
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f'{args.out}: {grid.shape[1]}x{grid.shape[0]} px, feature map {h}x{w}, '
          f'{"one PCA per image" if args.per_image else "one PCA for all images"}')


if __name__ == '__main__':
    main()
