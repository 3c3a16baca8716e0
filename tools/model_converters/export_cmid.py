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
from mmengine.config import Config  # noqa: E402

from cmid_mm.utils.export import export_checkpoint, to_mmseg_vit  # noqa: E402


def describe_arch(meta: dict) -> str:
    """Backbone type/arch from the config text mmengine stores in checkpoint meta."""
    try:
        backbone = Config.fromstring(meta['cfg'], '.py').model.backbone
    except Exception:  # no or unparsable config in the checkpoint: not fatal for an export
        return 'unknown (no config in checkpoint meta)'
    extra = {k: backbone[k] for k in ('depth', 'arch', 'patch_size') if k in backbone}
    return f"{backbone['type']} {extra}"


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
    import cmid_mm  # noqa: F401  (allow-lists Runner checkpoint globals for safe loading)
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
