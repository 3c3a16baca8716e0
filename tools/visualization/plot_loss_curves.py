"""Training curves of CMID's loss terms (loss_rec, loss_global, loss_local, loss) as a PNG.

    python tools/visualization/plot_loss_curves.py WORK_DIR [--out curves.png] \
        [--keys loss_rec loss_global loss_local loss] [--smooth 5] [--size 480 960]

WORK_DIR is a training work dir (every ``<timestamp>/vis_data/scalars.json`` in it is read,
oldest first, so resumed runs continue the curve) or one ``scalars.json`` file. The values are
what the logger wrote: means over the log processor's window (``log_processor.window_size``)
at every ``default_hooks.logger.interval``-th iteration.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import cv2  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('path', help='work dir of a training run, or a scalars.json file')
    parser.add_argument('--out', help='output PNG (default: <WORK_DIR>/loss_curves.png)')
    parser.add_argument('--keys', nargs='+',
                        default=['loss_rec', 'loss_global', 'loss_local', 'loss'],
                        help='logged values to plot, one panel each')
    parser.add_argument('--x-key', default='iter', help="x axis: 'iter' or 'epoch'")
    parser.add_argument('--smooth', type=int, default=1,
                        help='also draw a trailing mean over this many logged points')
    parser.add_argument('--size', type=int, nargs=2, default=[480, 960],
                        metavar=('HEIGHT', 'WIDTH'), help='picture size in pixels')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from cmid_mm.visualization.curves import find_scalars, loss_curves, read_scalars

    files = find_scalars(args.path)
    series = read_scalars(files, args.x_key)
    if not series:
        raise ValueError(f'no training records with {args.x_key!r} and "loss" in {files}')
    img = loss_curves(series, args.keys, tuple(args.size), args.smooth,
                      x_label='iteration' if args.x_key == 'iter' else args.x_key,
                      title=osp.basename(osp.normpath(args.path)))
    out = args.out or osp.join(args.path if osp.isdir(args.path) else
                               osp.dirname(args.path), 'loss_curves.png')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    cv2.imwrite(out, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    last = {k: round(float(series[k][1][-1]), 4) for k in args.keys}
    print(f'{out}: {img.shape[1]}x{img.shape[0]} px from {len(files)} file(s), '
          f'{len(series[args.keys[0]][0])} points; last values {last}')


if __name__ == '__main__':
    main()
