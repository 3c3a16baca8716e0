"""Convert the CMID reference implementation's released weights to cmid_mm files.

    # "backbone only" file -> downstream weights (same format as export_cmid.py)
    python tools/model_converters/import_reference.py cmid_swin_backbone.pth out/backbone.pth
    # full training file -> a cmid_mm checkpoint to continue pretraining from, + the export
    python tools/model_converters/import_reference.py ref_full.pth out/cmid.pth \
        --iters-per-epoch 3906 --export out/backbone.pth

The reference files are read with torch's safe unpickler; the reference trainer's pickled
objects (``metric_storage``, ``hooks``) become inert stubs, so its code is neither needed nor
run. A converted full file resumes with ``--resume out/cmid.pth`` (model, teacher, queue,
centre; the optimizer state and LR schedule restart) or loads with ``load_from``.
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402

from cmid_mm.utils.export import export_checkpoint  # noqa: E402
from cmid_mm.utils.reference_import import (backbone_only, convert_full_state,  # noqa: E402
                                            is_full_training_file, load_reference_file)


def _save(obj, path):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(obj, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('src', help='reference .pth ("backbone only" or full training file)')
    parser.add_argument('out', help='output: the export for a backbone-only file, a cmid_mm '
                        'checkpoint for a full file')
    parser.add_argument('--iters-per-epoch', type=int, default=None,
                        help='full files store only the epoch; give the iterations per epoch '
                        'of that run so the resumed iteration, EMA and LR schedules line up')
    parser.add_argument('--export', help='(full files) also write downstream weights here')
    parser.add_argument('--source', choices=['student', 'teacher'], default='student',
                        help='(full files, with --export) which backbone to export')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        raise FileNotFoundError(f'reference file {args.src!r} does not exist')
    obj = load_reference_file(args.src)

    if not is_full_training_file(obj):
        backbone = backbone_only(obj)
        ckpt = dict(state_dict=OrderedDict(('backbone.' + k, v) for k, v in backbone.items()))
        exported = export_checkpoint(ckpt)
        _save(exported, args.out)
        print(f'wrote {args.out}: {len(backbone)} backbone tensors (reference "backbone only" '
              'file, student)')
        return

    epoch = int(obj.get('epoch', 0))
    it = epoch * args.iters_per_epoch if args.iters_per_epoch else 0
    state = convert_full_state(obj['model'], steps=it)
    ckpt = dict(
        state_dict=state,
        meta=dict(epoch=epoch if args.iters_per_epoch else 0, iter=it,
                  source=f'reference full file {osp.basename(args.src)}, epoch {epoch}'),
        message_hub=MessageHub('import_reference').state_dict())
    _save(ckpt, args.out)
    print(f'wrote {args.out}: {len(state)} tensors (student, teacher, heads, queue, centre) '
          f'from reference epoch {epoch}')
    if not args.iters_per_epoch:
        print('  note: no --iters-per-epoch given: the file resumes at iteration 0 (use it '
              'as load_from, or give --iters-per-epoch to continue the schedules)')
    if args.export:
        exported = export_checkpoint(ckpt, args.source)
        _save(exported, args.export)
        print(f"wrote {args.export}: {exported['meta']['num_keys']} backbone tensors "
              f'({args.source})')


if __name__ == '__main__':
    main()
