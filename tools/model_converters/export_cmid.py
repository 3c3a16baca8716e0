"""Export the backbone of a CMID training checkpoint for downstream use.

    python tools/model_converters/export_cmid.py work_dirs/cmid/epoch_200.pth cmid_backbone.pth
    python tools/model_converters/export_cmid.py CKPT OUT --source teacher
    python tools/model_converters/export_cmid.py CKPT OUT --mmseg-vit   # ViT for mmseg

The output holds tensors only, keys ``backbone.*`` (see cmid_mm/utils/export.py for which
loader takes it how). ``--mmseg-vit`` also writes OUT with suffix ``_mmseg-vit.pth``: no prefix,
mmseg attention names, for mmseg's ``VisionTransformer(patch_bias=True)``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
from cmid_mm.converters.export import (describe_backbone_config, export_checkpoint,  # noqa: E402
                                  to_mmseg_vit)


def describe_arch(meta: dict) -> str:
    """Backbone type/arch from the config text mmengine stores in checkpoint meta (parsed, never
    executed: see :func:`cmid_mm.converters.export.describe_backbone_config`)."""
    text = meta.get('cfg')
    if not isinstance(text, str):
        return 'unknown (no config in checkpoint meta)'
    return describe_backbone_config(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='CMID training checkpoint (from tools/train.py)')
    parser.add_argument('out', help='output .pth file')
    parser.add_argument('--source', choices=['student', 'teacher'], default='student',
                        help='student backbone (default, as the reference releases) or the '
                        'EMA teacher')
    parser.add_argument('--mmseg-vit', action='store_true',
                        help="also write mmseg VisionTransformer names (ViT backbones)")
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    from cmid_mm.utils.checkpoint_guard import checkpoint_problem
    problem = checkpoint_problem(args.checkpoint)
    if problem is not None and problem.startswith('is not a torch zip'):
        print(f'note: {args.checkpoint} {problem}; exporting it unchecked')
    elif problem is not None:  # a damaged file would export damaged weights without a word
        raise ValueError(f'checkpoint {args.checkpoint} {problem}. Nothing was written; export '
                         'an intact checkpoint of the same run instead.')
    ckpt = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    exported = export_checkpoint(ckpt, args.source)
    exported['meta']['arch'] = describe_arch(ckpt.get('meta', {}) or {})
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(exported, args.out)
    meta = exported['meta']
    print(f"wrote {args.out}: {meta['num_keys']} tensors of the {args.source} backbone "
          f"({meta['arch']}), from epoch {meta['epoch']} / iter {meta['iter']}")
    if args.mmseg_vit:
        plain = {k[len('backbone.'):]: v for k, v in exported['state_dict'].items()}
        if not any('.attn.qkv.' in k for k in plain):
            raise ValueError('--mmseg-vit: the backbone has no ViT attention keys '
                             '(`layers.N.attn.qkv`); it is only for ViT backbones')
        out_vit = osp.splitext(args.out)[0] + '_mmseg-vit.pth'
        torch.save(dict(state_dict=to_mmseg_vit(plain), meta=meta), out_vit)
        print(f'wrote {out_vit}: mmseg VisionTransformer names, no prefix '
              '(build it with patch_bias=True)')


if __name__ == '__main__':
    main()
