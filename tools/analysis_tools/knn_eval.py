"""Weighted k-NN accuracy of a frozen backbone on a folder-per-class dataset.

    python tools/analysis_tools/knn_eval.py configs/cmid_resnet50_pretrain.py \
        work_dirs/cmid_resnet50_pretrain/epoch_200.pth \
        --train-dir data/UCM_split/train --val-dir data/UCM_split/val [--k 20] [--temperature 0.07]
    # or with the annotation files of tools/dataset_converters/split_folder_dataset.py:
    python tools/analysis_tools/knn_eval.py CONFIG CHECKPOINT \
        --train-dir data/UCMerced_LandUse/Images --train-ann data/UCMerced_LandUse/meta/train.txt \
        --val-dir data/UCMerced_LandUse/Images --val-ann data/UCMerced_LandUse/meta/val.txt

CONFIG gives the backbone (``model.backbone``: a CMID pretraining config or a downstream
classification config) and the input normalisation (``data_preprocessor`` mean / std /
to_rgb). CHECKPOINT is a CMID training checkpoint, a file written by
``tools/model_converters/export_cmid.py`` or a fine-tuned classifier: the backbone weights are
the keys under ``backbone.`` (the student; ``--source teacher`` takes the EMA teacher of a
CMID training checkpoint). Every image is resized (short edge ``img_size * 256 / 224``,
bicubic), centre-cropped to ``--img-size``, passed through the backbone in eval mode; the last
output map is globally average-pooled and L2-normalised. Each val image is then classified by
a vote of its ``k`` most cosine-similar train images weighted by ``exp(cos / T)`` (DINO's k-NN,
``cmid_mm.evaluation.knn_classify``). Prints the top-1 accuracy and writes a JSON report.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config whose model.backbone is evaluated')
    parser.add_argument('checkpoint', help='CMID / exported / fine-tuned checkpoint')
    parser.add_argument('--train-dir', required=True,
                        help='labelled reference images, one sub-folder per class')
    parser.add_argument('--val-dir', required=True,
                        help='images to classify, the same class sub-folders')
    parser.add_argument('--train-ann', help='"<path> <label>" lines (paths relative to '
                        '--train-dir) instead of scanning its folders')
    parser.add_argument('--val-ann', help='the same for --val-dir')
    parser.add_argument('--k', type=int, default=20, help='number of neighbours')
    parser.add_argument('--temperature', type=float, default=0.07,
                        help='T of the neighbour weights exp(cosine / T)')
    parser.add_argument('--source', choices=['student', 'teacher'], default='student',
                        help='backbone of a CMID training checkpoint to evaluate')
    parser.add_argument('--img-size', type=int, default=224, help='side of the centre crop')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', help='JSON report (default: work_dirs/knn_eval/'
                        '<config>_<checkpoint>_k<k>.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.depth=18')
    return parser.parse_args(argv)


def load_backbone(cfg, checkpoint: str, source: str = 'student') -> torch.nn.Module:
    """Build ``cfg.model.backbone`` (mmpretrain scope) and load the checkpoint's backbone.

    Raises a ``KeyError`` naming the keys when learned parameters of the built backbone are
    absent from the checkpoint (config and checkpoint describe different architectures).
    Missing buffers that are rebuilt from the config (Swin ``relative_position_index`` /
    ``attn_mask``) and the CMID ``mask_token`` (unused without a mask) are accepted.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from cmid_mm.utils.export import DROPPED_KEYS, DROPPED_SUFFIXES, extract_backbone

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.pop('init_cfg', None)  # the weights are loaded here, from CHECKPOINT
    backbone = MODELS.build(backbone_cfg)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict):
        raise TypeError(f'{checkpoint!r} holds a {type(ckpt).__name__}, not a state dict')
    weights = extract_backbone(state_dict, source)
    try:
        missing, unexpected = backbone.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(
            f'the {source} backbone of {checkpoint!r} does not fit the {backbone_cfg["type"]} '
            'backbone built from the config: use the config the checkpoint was trained with, '
            f'or set the architecture with --cfg-options. torch says: {e}') from e
    missing = [k for k in missing if k not in DROPPED_KEYS and not k.endswith(DROPPED_SUFFIXES)]
    if missing:
        raise KeyError(
            f'{checkpoint!r} lacks {len(missing)} of the {len(backbone.state_dict())} entries '
            f'of the {backbone_cfg["type"]} backbone built from the config (e.g. '
            f'{missing[:5]}): use the config the checkpoint was trained with, or set the '
            'architecture with --cfg-options (e.g. model.backbone.depth=18)')
    if unexpected:
        print(f'note: {len(unexpected)} checkpoint entries are not used by the backbone '
              f'(e.g. {unexpected[:5]})')
    print(f'loaded {len(weights)} {source} backbone tensors from {checkpoint}')
    backbone.eval()  # (mmpretrain's ResNet.train() does not return the module)
    return backbone


def normalisation(cfg) -> tuple:
    """``(mean, std, to_rgb)`` of the config's data preprocessor (ImageNet if it has none)."""
    dp = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    if dp.get('mean') is None or dp.get('std') is None:
        print('note: the config has no data_preprocessor mean/std: using ImageNet statistics')
        return IMAGENET_MEAN, IMAGENET_STD, True
    return list(dp['mean']), list(dp['std']), bool(dp.get('to_rgb', dp.get('bgr_to_rgb')))


def folder_dataset(folder: str, img_size: int, ann_file: str = None):
    """mmpretrain ``CustomDataset`` over ``folder/<class>/*`` with the evaluation transform.

    With ``ann_file`` the images and labels are its lines instead; class names are then the
    sorted sub-folders of ``folder`` (the labelling of split_folder_dataset.py).
    """
    from mmpretrain.datasets import CustomDataset

    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder!r} is not a folder: pass a folder with one '
                                'sub-folder of images per class')
    classes = None
    if ann_file:
        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
        classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=round(img_size * 256 / 224), edge='short',
             backend='pillow', interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]
    return CustomDataset(data_prefix=folder, ann_file=ann_file or '', pipeline=pipeline,
                         classes=classes or None)


@torch.no_grad()
def extract_features(backbone, dataset, mean, std, to_rgb, batch_size=32, num_workers=0,
                     device='cpu') -> torch.Tensor:
    """(N, C) globally pooled, L2-normalised features of the last backbone output.

    Images are uint8 BGR (N, 3, H, W) from the pipeline; they are converted to RGB if
    ``to_rgb`` and normalised as ``(x - mean) / std`` on the 0-255 scale.
    """
    from mmengine.dataset import pseudo_collate

    backbone = backbone.to(device)
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=pseudo_collate)
    feats = []
    for batch in loader:
        x = torch.stack(batch['inputs']).to(device).float()
        if to_rgb:
            x = x.flip(1)
        x = (x - mean_t) / std_t
        out = backbone(x)
        out = out[-1] if isinstance(out, (tuple, list)) else out
        if out.dim() == 4:  # (B, C, H, W) feature map
            out = out.mean(dim=(2, 3))
        elif out.dim() != 2:
            raise ValueError(f'the backbone gives a {out.dim()}-d output {tuple(out.shape)}; '
                             'k-NN needs (B, C, H, W) maps or (B, C) vectors (for a ViT set '
                             "model.backbone.out_type='featmap' or 'cls_token')")
        feats.append(F.normalize(out.float(), dim=1).cpu())
    return torch.cat(feats)


def main(argv=None):
    args = parse_args(argv)
    import cmid_mm  # noqa: F401  (registers CMID backbones; safe loading of Runner checkpoints)
    from cmid_mm.evaluation import knn_classify
    from cmid_mm.utils import load_config

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone = load_backbone(cfg, args.checkpoint, args.source)
    mean, std, to_rgb = normalisation(cfg)

    train_set = folder_dataset(args.train_dir, args.img_size, args.train_ann)
    val_set = folder_dataset(args.val_dir, args.img_size, args.val_ann)
    classes = list(train_set.CLASSES or [])
    if list(val_set.CLASSES or []) != classes:
        raise ValueError(f'class folders differ: {args.train_dir} has {classes}, '
                         f'{args.val_dir} has {list(val_set.CLASSES or [])}')
    start = time.time()
    kwargs = dict(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device)
    train_feats = extract_features(backbone, train_set, mean, std, to_rgb, **kwargs)
    val_feats = extract_features(backbone, val_set, mean, std, to_rgb, **kwargs)
    train_labels = torch.as_tensor(train_set.get_gt_labels(), dtype=torch.long)
    val_labels = torch.as_tensor(val_set.get_gt_labels(), dtype=torch.long)

    num_classes = max(len(classes), int(max(train_labels.max(), val_labels.max())) + 1)
    if len(classes) != num_classes:  # annotation files without matching class folders
        classes = [str(i) for i in range(num_classes)]

    pred, _ = knn_classify(train_feats, train_labels, val_feats, k=args.k, T=args.temperature,
                           num_classes=num_classes)
    correct = pred == val_labels
    top1 = correct.float().mean().item()
    per_class = {
        name: (correct[val_labels == i].float().mean().item() if (val_labels == i).any()
               else None) for i, name in enumerate(classes)}
    report = dict(
        config=args.config, checkpoint=args.checkpoint, source=args.source,
        train_dir=args.train_dir, val_dir=args.val_dir, k=args.k,
        k_used=min(args.k, len(train_set)), temperature=args.temperature,
        img_size=args.img_size, feature_dim=int(train_feats.shape[1]),
        num_train=len(train_set), num_val=len(val_set), classes=classes,
        top1=top1, num_correct=int(correct.sum()), per_class_top1=per_class,
        seconds=round(time.time() - start, 2))
    out = args.out or osp.join(
        'work_dirs', 'knn_eval', f'{osp.splitext(osp.basename(args.config))[0]}_'
        f'{osp.splitext(osp.basename(args.checkpoint))[0]}_k{args.k}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'k-NN (k={report["k_used"]}, T={args.temperature}) top-1 accuracy: {top1:.4f} '
          f'({report["num_correct"]}/{len(val_set)}) on {args.val_dir}; report: {out}')
    return report


if __name__ == '__main__':
    main()
