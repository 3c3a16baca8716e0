"""Local matching pictures: the position-matched cells of CMID's local loss on real images.

    python tools/visualization/vis_matching.py CONFIG IMAGE [IMAGE ...] \
        [--checkpoint CKPT] [--out-dir work_dirs/vis] [--seed 0] [--scale 2]

Each IMAGE goes through the config's train pipeline exactly as in training, the RNGs
reseeded for each image from --seed and the image's file name (so an image's PNG is the same
bit for bit whether it is drawn alone or among other images, in any order); the crop boxes
and flips it records give the cell centres and the matches
(``cmid_mm.models.utils.position_matching``, ``model.num_matches`` and
``model.reference_offsets`` of the config). One PNG per image,
``<out-dir>/matching_<image name>.png``, with a row per direction of the loss
(student A -> teacher B, student B -> teacher A; --direction picks one):

    source image with crop boxes (A red, B blue) and the matched cell centres |
    view A and view B as the network sees them (a flipped view is mirrored), each matched
    pair outlined and joined in its own colour

The feature-map size comes from a forward pass of the model, so the geometry is right for any
backbone; weights do not matter for the matching (--checkpoint is optional).
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
    parser.add_argument('config', help='a CMID pretraining config')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--checkpoint', help='CMID training checkpoint (optional)')
    parser.add_argument('--out-dir', default='work_dirs/vis', help='folder for the PNGs')
    parser.add_argument('--seed', type=int, default=0,
                        help="seed of crops, flips and masks (with each image's file name)")
    parser.add_argument('--scale', type=int, default=2,
                        help='integer enlargement of the views (nearest neighbour)')
    parser.add_argument('--direction', choices=['both', 'a_to_b', 'b_to_a'], default='both',
                        help='directions of the local loss to draw (a row each)')
    parser.add_argument('--bands', type=int, nargs=3, help='channels shown as RGB')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.num_matches=8')
    return parser.parse_args(argv)


def source_image(path: str, src_shape) -> 'np.ndarray':  # noqa: F821
    """The RGB image the crops were taken from: the file, resized to the shape the pipeline
    cropped from if the pipeline resized it first (e.g. the reference's 224 x 224 resize)."""
    import mmcv
    img = mmcv.imread(path, channel_order='rgb')
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = img[..., :3]
    h, w = int(src_shape[0]), int(src_shape[1])
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return img


def main(argv=None):
    args = parse_args(argv)
    import cmid_mm  # noqa: F401
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import (batch_pictures, build_cmid, pipeline_batch,
                                       stack_field)

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_cmid(cfg, args.checkpoint, args.device)
    data = pipeline_batch(cfg, args.images, args.seed)
    src_shapes = stack_field(data['data_samples'], 'crop_src_shape')
    sources = [source_image(p, s[0]) for p, s in zip(args.images, src_shapes)]
    pictures = batch_pictures(model, data, len(args.images), args.scale, args.bands,
                              matches=True, sources=sources,
                              directions=(['a_to_b', 'b_to_a'] if args.direction == 'both'
                                          else [args.direction]))
    os.makedirs(args.out_dir, exist_ok=True)
    for path, picture in zip(args.images, pictures['matching']):
        out = osp.join(args.out_dir, f'matching_{osp.splitext(osp.basename(path))[0]}.png')
        cv2.imwrite(out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(f'{out}: {picture.shape[1]}x{picture.shape[0]} px')


if __name__ == '__main__':
    main()
