"""Stop a run whose ``init_cfg=dict(type='Pretrained', ...)`` weights did not really load.

OpenMMLab loads ``Pretrained`` weights non-strictly: a missing ``prefix='backbone.'``, a
``ResNetV1c`` (deep stem) fed a plain-stem checkpoint, a module whose own loader ignores
``prefix``, or a shape mismatch only produce a warning (mmseg's Swin and ViT loaders log
nothing at all), and training goes on with a partly or wholly random backbone.

:func:`check_pretrained_loads` compares, after the weights were initialised, every tensor of
every module that has a ``Pretrained`` init with the checkpoint **by value**: a tensor counts as
loaded only when the checkpoint holds a tensor under the same (prefix-mapped) name that equals
it. Names are not trusted, nor are the toolboxes' logs. :class:`PretrainedLoadCheckHook` runs it
at ``before_train``; it is registered in mmengine's root ``HOOKS`` registry, so
``custom_hooks=[dict(type='PretrainedLoadCheckHook')]`` resolves from any default scope
(mmpretrain, mmseg, mmdet, open-cd ...) once ``cmid_mm`` is imported.
"""
import logging
import math
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log
from ...models.utils.wrappers import unwrap_model
from mmengine.registry import HOOKS

# Module tensors that a checkpoint need not hold: (pattern, why).
NEW_BY_DESIGN = (
    (re.compile(r'(^|\.)relative_position_index$'), 'index buffer rebuilt from the window size'),
    (re.compile(r'(^|\.)attn_mask$'), 'mask buffer rebuilt from the window size'),
    (re.compile(r'(^|\.)num_batches_tracked$'), 'BatchNorm step counter'),
)
# Swin's per-stage output norms (mmseg / mmdet build norm0..norm3 for out_indices (0, 1, 2, 3));
# a checkpoint pretrained with out_indices=(3, ) only has norm3.
OUTPUT_NORM = re.compile(r'^norm\d+\.')
OUTPUT_NORM_WHY = 'output norm of a stage the checkpoint has no norm for'
USER_WHY = 'allow_missing'
# Names whose tensors loaders adapt to the model's size (interpolate / reshape) while loading.
RESIZED_NAMES = re.compile(r'(relative_position_bias_table|pos_embed)$')
SHOW = 8  # names shown per list in messages


def _first(names: Sequence[str], n: int = SHOW) -> str:
    names = list(names)
    more = f', ... ({len(names) - n} more)' if len(names) > n else ''
    return ', '.join(names[:n]) + more


def _shape(t: torch.Tensor) -> str:
    return '(' + ', '.join(str(s) for s in t.shape) + ')'


def pretrained_inits(init_cfg) -> List[dict]:
    """The ``Pretrained`` entries of a module's ``init_cfg`` (a dict or a list of dicts)."""
    if init_cfg is None:
        return []
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    found = []
    for cfg in cfgs:
        if not hasattr(cfg, 'get'):
            continue
        kind = cfg.get('type')
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.split('.')[-1] in ('Pretrained', 'PretrainedInit') and cfg.get('checkpoint'):
            found.append(cfg)
    return found


def load_state_dict_from(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """The tensors of a checkpoint file, as the Pretrained loaders see them.

    Local files are read with ``torch.load(weights_only=True)``; other locations (URLs,
    ``torchvision://`` ...) through mmengine's ``CheckpointLoader``, which the module itself
    has just used to load them (cached). The state dict is taken from a ``state_dict`` or
    ``model`` entry when there is one, else the top level.
    """
    if osp.isfile(path):
        from ...utils.checkpoint_guard import checkpoint_problem
        problem = checkpoint_problem(path)
        # a damaged record (bad CRC) loads as whatever bytes it now holds, into the model and
        # here alike: equal values would prove nothing
        if problem is not None and not problem.startswith('is not a torch zip'):
            raise PretrainedLoadError(f'pretrained checkpoint {path} {problem}. The backbone '
                                      'was initialised from it; export the weights again.')
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    else:
        from mmengine.runner import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    tensors = OrderedDict((k, v) for k, v in state.items()
                          if isinstance(k, str) and isinstance(v, torch.Tensor)) \
        if isinstance(state, dict) else OrderedDict()
    if not tensors:
        raise ValueError(f'pretrained checkpoint {path!r} holds no tensors (looked in '
                         "'state_dict', 'model' and the top level): is it a weights file?")
    return tensors


def _candidate_mappings(state: Dict[str, torch.Tensor], prefix: Optional[str]):
    """(stripped prefix, name -> tensor) readings of the checkpoint for the module.

    First mmengine's reading: with ``prefix``, the keys starting with it, stripped; without,
    all keys with ``module.`` stripped (as ``load_checkpoint`` does). Then the other readings
    some modules' own loaders use, which the comparison of values decides between: the plain
    keys (mmseg's ViT ignores ``prefix``), and the keys with a first name component shared by
    all keys, or ``backbone.``, stripped (mmseg / mmdet Swin strip ``backbone.`` themselves).
    """
    plain = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())
    readings = []
    if prefix is not None:
        if not prefix.endswith('.'):
            prefix += '.'
        readings.append((prefix, OrderedDict((k[len(prefix):], v) for k, v in state.items()
                                             if k.startswith(prefix))))
    readings.append(('', plain))
    heads = {k.split('.', 1)[0] for k in plain if '.' in k}
    strip = set()
    if len(heads) == 1 and all('.' in k for k in plain):
        strip |= heads
    if any(k.startswith('backbone.') for k in plain):
        strip.add('backbone')
    for head in sorted(strip):
        p = head + '.'
        if p != prefix:
            readings.append((p, OrderedDict((k[len(p):] if k.startswith(p) else k, v)
                                            for k, v in plain.items())))
    return readings


def _resized_candidates(ckpt: torch.Tensor, shape: torch.Size) -> Iterable[torch.Tensor]:
    """What loaders make of a bias table / position embedding for another window or size.

    Relative position bias tables ``(S1*S1, heads) -> (S2*S2, heads)``: bicubic resize of the
    ``S x S`` grid (mmseg / mmdet Swin) and mmpretrain's geometric-progression resize.
    Position embeddings ``(1, extra + H1*W1, C) -> (1, extra + H2*W2, C)``: extra (class)
    tokens kept, the grid resized (bicubic or bilinear, mmpretrain / mmseg). Same number of
    elements: a reshape/permute (mmseg Swin's absolute position embedding).
    """
    ckpt = ckpt.float()
    if ckpt.numel() == math.prod(shape):
        yield ckpt  # compared as a multiset of values by the caller
    if ckpt.dim() == 2 and len(shape) == 2 and ckpt.shape[1] == shape[1]:
        s1, s2 = math.isqrt(ckpt.shape[0]), math.isqrt(shape[0])
        if s1 * s1 == ckpt.shape[0] and s2 * s2 == shape[0]:
            heads = ckpt.shape[1]
            grid = ckpt.permute(1, 0).reshape(1, heads, s1, s1)
            yield F.interpolate(grid, size=(s2, s2), mode='bicubic').reshape(
                heads, s2 * s2).permute(1, 0)
            try:  # mmpretrain's Swin resize (scipy); unavailable -> that loader was not used
                from mmpretrain.models.utils.embed import resize_relative_position_bias_table
                yield resize_relative_position_bias_table(s1, s2, ckpt, heads)
            except Exception:  # noqa: BLE001  (no mmpretrain / scipy without interp2d)
                pass
    if ckpt.dim() == 3 and len(shape) == 3 and ckpt.shape[0] == shape[0] == 1 \
            and ckpt.shape[2] == shape[2]:
        for extra in (0, 1, 2):
            n1, n2 = ckpt.shape[1] - extra, shape[1] - extra
            s1 = math.isqrt(max(n1, 0))
            if n1 <= 0 or n2 <= 0 or s1 * s1 != n1:
                continue
            tokens, grid = ckpt[:, :extra], ckpt[:, extra:]
            grid = grid.reshape(1, s1, s1, -1).permute(0, 3, 1, 2)
            for h in range(1, n2 + 1):
                if n2 % h:
                    continue
                for mode in ('bicubic', 'bilinear'):
                    new = F.interpolate(grid, size=(h, n2 // h), mode=mode, align_corners=False)
                    yield torch.cat([tokens, new.flatten(2).transpose(1, 2)], dim=1)


def _is_resized(ckpt: torch.Tensor, value: torch.Tensor) -> bool:
    """True when ``value`` is what a loader makes of ``ckpt`` for another size (see
    :func:`_resized_candidates`). Tolerance: the same interpolation may run on other kernels
    (thread count, vectorisation), 1e-5 of the tensor's magnitude; a tensor left at its
    initial value differs by the scale of the weights themselves."""
    value = value.detach().float().cpu()
    tol = 1e-5 * max(float(ckpt.abs().max()), 1e-12)
    for cand in _resized_candidates(ckpt.detach().cpu(), value.shape):
        if cand.shape == value.shape:
            if torch.allclose(cand, value, rtol=0, atol=tol):
                return True
        elif cand.numel() == value.numel() and torch.equal(
                cand.flatten().sort().values, value.flatten().sort().values):
            return True
    return False


@dataclass
class PretrainedLoadReport:
    """By-value account of one module's ``Pretrained`` init."""
    module: str
    module_type: str
    checkpoint: str
    prefix: Optional[str]
    stripped: str = ''  # prefix the comparison stripped from the checkpoint's keys
    loaded: List[str] = field(default_factory=list)
    resized: List[Tuple[str, str]] = field(default_factory=list)  # (name, 'old -> new shape')
    new_by_design: List[Tuple[str, str]] = field(default_factory=list)  # (name, why)
    missing: List[str] = field(default_factory=list)
    not_loaded: List[Tuple[str, str]] = field(default_factory=list)  # (name, why)
    unexpected: List[str] = field(default_factory=list)
    hints: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.not_loaded and bool(self.loaded or self.resized)

    def counts(self) -> Dict[str, int]:
        return dict(loaded=len(self.loaded), resized=len(self.resized),
                    new_by_design=len(self.new_by_design), missing=len(self.missing),
                    not_loaded=len(self.not_loaded), unexpected=len(self.unexpected))

    @property
    def declared(self) -> str:
        """The prefix mmengine's PretrainedInit strips ('' without one)."""
        if self.prefix is None:
            return ''
        return self.prefix if self.prefix.endswith('.') else self.prefix + '.'

    def title(self) -> str:
        prefix = 'no prefix' if self.prefix is None else f'prefix {self.prefix!r}'
        read = ''
        if self.stripped != self.declared:
            how = (f'with {self.stripped!r} stripped' if self.stripped else 'as they are')
            read = (f"; the module's own loader reads the keys {how}" if self.loaded
                    else f'; compared with the keys {how}')
        return f'{self.module} ({self.module_type}) <- {self.checkpoint} ({prefix}{read})'

    def summary(self) -> str:
        c = self.counts()
        lines = [f'pretrained weights of {self.title()}:',
                 '  loaded {loaded} | resized {resized} | new by design {new_by_design} | '
                 'missing {missing} | not loaded {not_loaded} | unexpected (unused in the '
                 'file) {unexpected}  ->  '.format(**c) + ('OK' if self.ok else 'NOT LOADED')]
        if self.resized:
            lines.append('  resized by the loader: ' + _first(
                [f'{k} {s}' for k, s in self.resized], 4))
        by_why: Dict[str, List[str]] = OrderedDict()
        for name, why in self.new_by_design:
            by_why.setdefault(why, []).append(name)
        for why, names in by_why.items():
            lines.append(f'  new by design ({why}): {_first(names)}')
        if self.missing:
            lines.append(f'  missing from the file: {_first(self.missing)}')
        if self.not_loaded:
            lines.append('  not loaded: ' + _first([f'{k} ({why})' for k, why in
                                                    self.not_loaded], 4))
        if self.unexpected:
            lines.append(f'  unexpected (in the file, not in the module): '
                         f'{_first(self.unexpected)}')
        for hint in self.hints:
            lines.append(f'  hint: {hint}')
        return '\n'.join(lines)

    def error(self) -> str:
        c = self.counts()
        prefix = 'no prefix' if self.prefix is None else f'prefix {self.prefix!r}'
        parts = [f'{self.module} ({self.module_type}) did not load its pretrained weights from '
                 f'{self.checkpoint!r} ({prefix}): '
                 'loaded {loaded}, resized {resized}, missing {missing}, not loaded '
                 '{not_loaded}, unexpected {unexpected}.'.format(**c)]
        if self.missing:
            parts.append(f'Missing: {_first(self.missing)}.')
        if self.not_loaded:
            parts.append('Not loaded: ' + _first([f'{k} ({why})' for k, why in
                                                   self.not_loaded], 4) + '.')
        if self.unexpected:
            parts.append(f'Unexpected: {_first(self.unexpected)}.')
        parts += [f'Hint: {h}' for h in self.hints]
        return ' '.join(parts)


def compare_module(module: torch.nn.Module, state: Dict[str, torch.Tensor],
                   prefix: Optional[str], allow_missing: Sequence = (), name: str = 'model',
                   checkpoint: str = '?') -> PretrainedLoadReport:
    """Compare ``module``'s tensors with the checkpoint ``state`` (see the module docstring)."""
    allow = [re.compile(p) if isinstance(p, str) else p for p in allow_missing]
    own = module.state_dict()
    best = None
    readings = _candidate_mappings(state, prefix)
    for stripped, mapped in [r for r in readings if r[1]] or readings[:1]:
        report = PretrainedLoadReport(name, type(module).__name__, checkpoint, prefix, stripped)
        _classify(report, own, mapped, allow)
        found = len(report.loaded) + len(report.resized)
        score = (found, found + len(report.not_loaded))  # by value, then by name
        if best is None or score > best[0]:
            best = (score, report, mapped)
    _, report, mapped = best
    # mmseg's ViT loads the file itself and never reads init_cfg.prefix
    ignores_prefix = (type(module).__module__.startswith('mmseg.')
                      and type(module).__name__ == 'VisionTransformer')
    _add_hints(report, mapped, ignores_prefix)
    return report


def _new_by_design(name: str, allow) -> Optional[str]:
    for pattern, why in NEW_BY_DESIGN:
        if pattern.search(name):
            return why
    for pattern in allow:
        if pattern.search(name):
            return f'{USER_WHY} {pattern.pattern!r}'
    return None


def _classify(report, own, mapped, allow) -> None:
    for key, value in own.items():
        why_new = _new_by_design(key, allow)
        ckpt = mapped.get(key)
        if ckpt is None:
            if why_new:
                report.new_by_design.append((key, why_new))
            else:
                report.missing.append(key)
            continue
        value = value.detach()
        if ckpt.shape == value.shape:
            if torch.equal(ckpt.to(device=value.device, dtype=value.dtype), value):
                report.loaded.append(key)
            elif why_new:
                report.new_by_design.append((key, why_new))
            else:
                report.not_loaded.append((key, 'value differs from the file'))
        elif RESIZED_NAMES.search(key) and _is_resized(ckpt, value):
            report.resized.append((key, f'{_shape(ckpt)} -> {_shape(value)}'))
        elif why_new:
            report.new_by_design.append((key, why_new))
        else:
            report.not_loaded.append((key, f'shape {_shape(ckpt)} in the file, '
                                           f'{_shape(value)} in the model'))
    report.unexpected = [k for k in mapped if k not in own]
    # Swin output norms: normN the file lacks while it has another normM (norm3 of a backbone
    # pretrained with out_indices=(3, )) are the output norms of other stages, new by design
    if any(OUTPUT_NORM.match(k) for k in mapped):
        extra = [k for k in report.missing if OUTPUT_NORM.match(k)]
        report.missing = [k for k in report.missing if k not in extra]
        report.new_by_design += [(k, OUTPUT_NORM_WHY) for k in extra]


def _add_hints(report: PretrainedLoadReport, mapped, ignores_prefix: bool = False) -> None:
    hints = report.hints
    loaded = len(report.loaded) + len(report.resized)
    differs = [k for k, why in report.not_loaded if why.startswith('value differs')]
    shapes = [f'{k}: {why}' for k, why in report.not_loaded if why.startswith('shape')]
    if loaded == 0 and (differs or report.missing) and ignores_prefix:
        hints.append(f"{report.module_type} of mmseg ignores init_cfg.prefix and names its "
                     'attention differently: give it a file without the prefix, in its names '
                     '(export_cmid.py --mmseg-vit writes one), and no prefix')
    elif loaded == 0 and differs:
        if report.stripped and report.stripped != report.declared:
            hints.append(f"the file's keys start with {report.stripped!r} and "
                         f'{report.module_type} does not strip it: set '
                         f"prefix={report.stripped!r} in init_cfg")
        elif report.prefix is not None:
            hints.append(f'the names match but {report.module_type} did not load the values: '
                         'its own init_weights may ignore init_cfg.prefix')
        else:
            hints.append(f'the names match but {report.module_type} did not load the values')
    elif differs:
        hints.append(f'{len(differs)} tensors match the file in name and shape but hold other '
                     'values: something re-initialised them after loading (another init_cfg, '
                     'an init_weights override) or the loader skipped them')
    stem = [k for k in report.missing if k.startswith('stem.')]
    if stem and 'conv1.weight' in report.unexpected:
        hints.append('stem.* missing: this checkpoint has a plain ResNet stem (conv1/bn1), the '
                     "model a deep stem: use type='ResNet', not 'ResNetV1c' / 'ResNetV1d'")
    if shapes:
        hints.append('shapes differ (' + _first(shapes, 3) + '): build the model as the '
                     'pretrained one (in_channels, depth / arch, embed dims, heads)')
    if loaded == 0 and not report.not_loaded and report.prefix is None:
        heads = sorted({k.split('.', 1)[0] for k in mapped})
        hints.append(f'no name of the module is in the file (its keys start with '
                     f'{_first(heads, 5)}): set init_cfg prefix to the part in front of the '
                     "module's names, e.g. prefix='backbone.'")
    others = [k for k in report.missing if not k.startswith('stem.')]
    if others and loaded:
        hints.append('tensors of the module have no counterpart in the file: check the '
                     'architecture (depth / arch / stages) against the pretrained one; if '
                     'they are new on purpose, list them in the hook\'s allow_missing '
                     '(regular expressions)')


class PretrainedLoadError(RuntimeError):
    """A module's ``Pretrained`` weights did not (all) load."""


def check_pretrained_loads(model: torch.nn.Module, strict: bool = True,
                           allow_missing: Sequence = (), logger='current'
                           ) -> List[PretrainedLoadReport]:
    """Check every module of ``model`` that has a ``Pretrained`` init, after ``init_weights``.

    Logs one summary per module. With ``strict`` raises :class:`PretrainedLoadError` naming
    the module, the file, the counts, the first missing / not-loaded / unexpected names and
    a hint, if a module tensor is missing from the file (and not new by design or matched by
    ``allow_missing``) or does not hold the file's value; otherwise logs that as a warning.
    Unexpected keys (in the file, not in the module: e.g. stage-4 weights of a 3-stage
    backbone) are only reported.
    """
    model = unwrap_model(model)
    cache: Dict[str, Dict[str, torch.Tensor]] = {}
    reports = []
    for name, module in model.named_modules():
        for cfg in pretrained_inits(getattr(module, 'init_cfg', None)):
            path = str(cfg['checkpoint'])
            if path not in cache:
                try:
                    cache[path] = load_state_dict_from(path)
                except Exception as e:
                    raise PretrainedLoadError(
                        f'PretrainedLoadCheckHook: cannot read the pretrained checkpoint '
                        f'{path!r} of {name or "model"} ({type(module).__name__}) to check '
                        f'it: {type(e).__name__}: {e}') from e
            report = compare_module(module, cache[path], cfg.get('prefix'), allow_missing,
                                    name or 'model', path)
            reports.append(report)
            print_log(report.summary(), logger=logger,
                      level=logging.INFO if report.ok else logging.WARNING)
            if report.ok and report.unexpected:
                print_log(f'{report.module}: {len(report.unexpected)} tensors of '
                          f'{report.checkpoint} are not used by the module (listed above)',
                          logger=logger, level=logging.WARNING)
    if not reports:
        print_log('PretrainedLoadCheckHook: no module has a Pretrained init_cfg: nothing to '
                  'check', logger=logger)
    failed = [r for r in reports if not r.ok]
    if failed:
        message = ' | '.join(r.error() for r in failed)
        if strict:
            raise PretrainedLoadError(
                f'{message} (PretrainedLoadCheckHook compares every tensor with the file by '
                'value; strict=False in the hook only warns)')
        print_log(f'PretrainedLoadCheckHook (strict=False): {message}', logger=logger,
                  level=logging.WARNING)
    return reports


@HOOKS.register_module()
class PretrainedLoadCheckHook(Hook):
    """At ``before_train``, check by value that every ``Pretrained`` init_cfg really loaded.

    Runs after the Runner initialised the weights. Skipped (with an info log) when the run
    resumed or loaded ``load_from``, since those weights replace the init_cfg ones.

    Args:
        strict: raise :class:`PretrainedLoadError` when a pretrained module tensor is
            missing from the file or does not hold the file's value (default); ``False``
            only logs a warning.
        allow_missing: regular expressions (searched in the module's tensor names) of
            tensors that are new on purpose, besides the built-in ones
            (``relative_position_index``, ``attn_mask``, ``num_batches_tracked``, Swin output
            norms the file has no weights for).
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True, allow_missing: Sequence[str] = ()) -> None:
        if isinstance(allow_missing, str):
            allow_missing = [allow_missing]
        self.strict = bool(strict)
        self.allow_missing = []
        for pattern in allow_missing:
            try:
                self.allow_missing.append(re.compile(pattern))
            except (re.error, TypeError) as e:
                raise ValueError(f'PretrainedLoadCheckHook: allow_missing entry {pattern!r} '
                                 f'is not a regular expression ({e})') from e

    def before_train(self, runner) -> None:
        if getattr(runner, '_has_loaded', False):
            how = ('resumes from a checkpoint' if getattr(runner, '_resume', False) else
                   f'loads load_from={getattr(runner, "_load_from", None)!r}')
            runner.logger.info(f'PretrainedLoadCheckHook: skipped, this run {how}, which '
                               'replaces the init_cfg (Pretrained) weights')
            return
        check_pretrained_loads(runner.model, self.strict, self.allow_missing,
                               logger=runner.logger)
