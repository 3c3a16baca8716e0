"""Check that a checkpoint's backbone weights fit a config's backbone (names and shapes).

    python tools/analysis_tools/check_weights.py CONFIG CHECKPOINT [--prefix backbone.]
    python tools/analysis_tools/check_weights.py \
        configs/segmentation/upernet_cmid-r50_4xb4-50e_potsdam-512x512.py \
        work_dirs/cmid_r50_backbone.pth

Builds ``model.backbone`` of CONFIG (in the config's ``default_scope``: mmpretrain, mmseg or
mmdet; no weights are loaded while building) and compares its state dict with the tensors under
``--prefix`` in CHECKPOINT: a CMID training checkpoint (``backbone.`` = student,
``teacher.module.backbone.`` = EMA teacher), a file of ``tools/model_converters/export_cmid.py``
or any mmengine checkpoint. Keys loaders ignore (the CMID mask token, Swin buffers rebuilt from
the window size) are left out. Prints the matching / missing / unexpected / shape-mismatched
keys; exit code 0 if everything matches, 1 otherwise (mmengine itself would only log them).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config whose model.backbone the weights are meant for')
    parser.add_argument('checkpoint', help='checkpoint file (or URL)')
    parser.add_argument('--prefix', default='backbone.',
                        help='key prefix of the backbone in the file ("" for bare weights)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. model.backbone.depth=50')
    return parser.parse_args(argv)


def build_backbone(cfg):
    """``cfg.model.backbone`` built in the config's default scope."""
    import copy

    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    imports = cfg.get('custom_imports')
    if imports:
        import_modules_from_strings(**imports)
    import cmid_mm  # noqa: F401  (registers cmid_mm modules and safe checkpoint loading)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    backbone_cfg = copy.deepcopy(cfg.get('model', {}).get('backbone'))
    if not backbone_cfg:
        raise KeyError('the config has no model.backbone to check the weights against')
    backbone_cfg.pop('init_cfg', None)
    return MODELS.build(backbone_cfg)


def main(argv=None) -> int:
    args = parse_args(argv)
    from cmid_mm.converters.arch_check import CheckpointArchMismatch, check_backbone_checkpoint
    from cmid_mm.utils.config import load_config

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone = build_backbone(cfg)
    try:
        report = check_backbone_checkpoint(backbone, args.checkpoint, prefix=args.prefix)
    except CheckpointArchMismatch as e:
        print(f'MISMATCH: {e}', file=sys.stderr)
        return 1
    print(f'OK: {args.checkpoint} fits model.backbone ({type(backbone).__name__}) of '
          f'{args.config}: {report.summary()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
