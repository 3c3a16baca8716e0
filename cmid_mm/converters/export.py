"""Turn a CMID training checkpoint into plain backbone weights for downstream toolboxes.

The output holds tensors only (it loads under torch's safe loading without cmid_mm) in
``{'state_dict': {'backbone.<key>': tensor}, 'meta': {...}}``. With the ``backbone.`` prefix
one file loads into:

* mmpretrain / mmseg / mmdet ``ResNet`` and mmpretrain ``SwinTransformer`` /
  ``VisionTransformer`` with ``init_cfg=dict(type='Pretrained', checkpoint=F, prefix='backbone.')``;
* mmseg ``SwinTransformer`` (strips ``backbone.`` itself) and mmdet ``SwinTransformer`` with
  ``convert_weights=False`` (keeps only ``backbone.`` keys).

mmseg's ``VisionTransformer`` ignores ``prefix`` and names its attention differently, so ViT
exports also offer :func:`to_mmseg_vit` (no prefix, ``attn.attn.in_proj_*`` / ``out_proj``;
build the mmseg model with ``patch_bias=True``).
"""
from collections import OrderedDict

import torch

SOURCES = {'student': 'backbone.', 'teacher': 'teacher.module.backbone.'}
# Not part of the stock backbones' learned state: the mask token, and Swin buffers that are
# rebuilt from the window size (keeping them breaks loading with another window size).
DROPPED_SUFFIXES = ('relative_position_index', 'attn_mask')
DROPPED_KEYS = ('mask_token', )


def extract_backbone(state_dict: dict, source: str = 'student') -> 'OrderedDict[str, torch.Tensor]':
    """Backbone weights (no prefix) of the student or the EMA teacher of a CMID state dict."""
    if source not in SOURCES:
        raise ValueError(f'source must be one of {sorted(SOURCES)}, got {source!r}')
    prefix = SOURCES[source]
    out = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in DROPPED_KEYS or name.endswith(DROPPED_SUFFIXES):
            continue
        out[name] = value.detach().clone().contiguous()
    if not out:
        found = sorted({k.split('.')[0] for k in state_dict})
        raise KeyError(f'no key starts with {prefix!r}: is this a CMID checkpoint? Top-level '
                       f'names found: {found}')
    return out


def to_mmseg_vit(backbone: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Rename mmpretrain ViT keys to mmseg ``VisionTransformer`` names (no prefix)."""
    out = OrderedDict()
    for key, value in backbone.items():
        key = key.replace('.attn.qkv.', '.attn.attn.in_proj_').replace(
            '.attn.proj.', '.attn.attn.out_proj.')
        out[key] = value
    return out


def export_checkpoint(ckpt: dict, source: str = 'student') -> dict:
    """``{'state_dict': {'backbone.*': ...}, 'meta': {...}}`` from a Runner checkpoint dict."""
    if 'state_dict' not in ckpt:
        raise KeyError('checkpoint has no "state_dict": expected a file written by the '
                       f'training Runner, got keys {sorted(ckpt)[:10]}')
    backbone = extract_backbone(ckpt['state_dict'], source)
    meta = ckpt.get('meta', {}) or {}
    return dict(
        state_dict=OrderedDict(('backbone.' + k, v) for k, v in backbone.items()),
        meta=dict(
            source=source,
            epoch=int(meta.get('epoch', -1)),
            iter=int(meta.get('iter', -1)),
            num_keys=len(backbone)))


def describe_backbone_config(config_text: str) -> str:
    """``"<type> {depth/arch/patch_size}"`` of ``model.backbone`` in the config text mmengine
    stores in checkpoint meta (``meta['cfg']``), read WITHOUT running it.

    The text is Python; evaluating it (``Config.fromstring``) would run whatever a crafted
    checkpoint put there. It is only parsed (:mod:`ast`) and the few fields are read with
    :func:`ast.literal_eval`, which accepts literals only.
    """
    import ast
    try:
        tree = ast.parse(config_text)
    except (SyntaxError, ValueError, TypeError):
        return 'unknown (the config text in the checkpoint does not parse)'

    def dict_call(node):
        """keyword -> value node of a ``dict(...)`` call or ``{...}`` literal."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == 'dict':
            return {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(node, ast.Dict):
            return {k.value: v for k, v in zip(node.keys, node.values)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        return None

    model = None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model' for t in stmt.targets):
            model = dict_call(stmt.value)
    backbone = dict_call(model['backbone']) if model and 'backbone' in model else None
    if not backbone or 'type' not in backbone:
        return 'unknown (no model.backbone in the config text of the checkpoint)'
    fields = {}
    for key in ('type', 'depth', 'arch', 'patch_size'):
        if key in backbone:
            try:
                fields[key] = ast.literal_eval(backbone[key])
            except (ValueError, TypeError, SyntaxError):
                fields[key] = '<not a literal>'
    kind = fields.pop('type')
    return f'{kind} {fields}'
