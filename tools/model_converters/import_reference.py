"""Convert the CMID reference implementation's released weights to cmid_mm files.

    # "backbone only" file -> downstream weights (same format as export_cmid.py)
    python tools/model_converters/import_reference.py cmid_swin_backbone.pth out/backbone.pth
    # full training file (epoch_N.pth) -> a cmid_mm checkpoint to continue pretraining from,
    # + the export
    python tools/model_converters/import_reference.py epoch_99.pth out/cmid.pth \
        --export out/backbone.pth

The reference files are read with torch's restricted unpickler; the reference trainer's
pickled objects (``metric_storage``, ``hooks``) become inert stubs, so its code is neither
needed nor run. The reference writes ``epoch_N.pth`` after epoch N (counted from 0) and would
resume at epoch N + 1; the converted checkpoint says the same: ``N + 1`` epochs and
``(N + 1) * iters_per_epoch`` iterations done, the iterations per epoch read from the file's
metric storage (``--iters-per-epoch`` is only needed for files without it). It resumes with
``--resume out/cmid.pth`` (model, teacher, queue, centre; the optimizer state and LR schedule
restart) or loads with ``load_from``.
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402

from cmid_mm.converters.export import export_checkpoint  # noqa: E402
from cmid_mm.converters.reference_import import (backbone_only, convert_full_state,  # noqa: E402
                                            is_full_training_file, load_reference_file,
                                            reference_progress)


def _save(obj, path):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(obj, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('src', help='reference .pth ("backbone only" or full training file)')
    parser.add_argument('out', help='output: the export for a backbone-only file, a cmid_mm '
                        'checkpoint for a full file')
    parser.add_argument('--iters-per-epoch', type=int, default=None,
                        help='(full files) iterations per epoch of the run that wrote the file; '
                        'read from its metric storage when it has one (then this is only '
                        'checked against it), required otherwise')
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

    progress = reference_progress(obj, args.iters_per_epoch)
    epoch, it = progress['epoch'], progress['iter']
    state = convert_full_state(obj['model'], steps=it)
    ckpt = dict(
        state_dict=state,
        meta=dict(epoch=epoch, iter=it,
                  source=f'reference full file {osp.basename(args.src)} (reference epoch '
                  f"{obj['epoch']}, {epoch} epochs done)"),
        message_hub=MessageHub('import_reference').state_dict())
    _save(ckpt, args.out)
    print(f'wrote {args.out}: {len(state)} tensors (student, teacher, heads, queue, centre) '
          f"from reference epoch {obj['epoch']}: {epoch} epochs = {it} iterations done "
          f"({progress['iters_per_epoch']} per epoch, {obj.get('num_gpus', '?')} GPUs); "
          f'resuming continues at epoch {epoch}')
    if args.export:
        exported = export_checkpoint(ckpt, args.source)
        _save(exported, args.export)
        print(f"wrote {args.export}: {exported['meta']['num_keys']} backbone tensors "
              f'({args.source})')


if __name__ == '__main__':
    main()
