"""``SafeRunner``: mmengine's Runner with three guarantees about checkpoints.

1. **Loading a checkpoint runs no code.** Tensors and the allow-listed Runner classes are read
   by torch's safe unpickler (:mod:`cmid_mm.utils.checkpoint`), URLs included. mmengine's
   ``Runner.resume`` additionally hands ``meta['config']`` of the file (an mmcv-1.x field) to
   ``Config.fromstring``, which *executes* that text as Python; a file dropped into a work dir
   could run anything on ``--resume``. This runner removes the field before ``resume`` sees it
   (it only served a GPU-count warning) and says so in the log.
2. **A damaged file is refused before it is used.** Before a local checkpoint is loaded
   (``--resume PATH``, ``load_from``), every record's CRC is verified
   (:func:`cmid_mm.utils.checkpoint_guard.checkpoint_problem`); a damaged file stops the run
   with its name, what is wrong and the newest intact checkpoint of its folder.
   (``--resume`` auto chooses the newest *intact* checkpoint itself, see ``tools/train.py``.)
3. **No checkpoint with non-finite weights is written.** Before saving, every floating-point
   tensor of the model state and of the optimizer state is checked (one pass over the weights
   per checkpoint, nothing per iteration); a NaN/Inf stops the run without writing the file,
   naming the tensor and the newest checkpoint to resume from. When training stops on a
   non-finite loss, the error says which checkpoint holds the very weights that produced it
   and which one is the newest written before them.
4. **An epoch the model cannot take stops before the first iteration**: an epoch with no batch,
   or a short last batch the CMID queue cannot take (:func:`check_train_batches`).

``tools/train.py`` and ``tools/test.py`` use it for every config; another toolbox's
``train.py`` uses it when the config sets ``runner_type = 'SafeRunner'`` (and imports
``cmid_mm`` through ``custom_imports``).
"""
import importlib
import logging
import os.path as osp
import re
import warnings
from typing import Callable, List, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..models.utils.wrappers import unwrap_model
from ..utils.checkpoint_guard import (checkpoint_problem, find_resumable_checkpoint,
                                     runner_checkpoints)


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint file is damaged (truncated, bad CRC, not a checkpoint)."""


class NonFiniteStateError(FloatingPointError):
    """The model or optimizer state holds NaN/Inf at the time a checkpoint is saved."""


def _is_local_file(filename: str) -> bool:
    return isinstance(filename, str) and '://' not in filename and osp.isfile(filename)


def first_non_finite(tensors, prefix: str = '') -> Optional[Tuple[str, torch.Tensor]]:
    """The name and value of the first floating-point tensor in a (nested) state that holds NaN
    or Inf, or ``None``. Walks dicts, lists and tuples; other leaves are ignored."""
    if torch.is_tensor(tensors):
        if (tensors.is_floating_point() or tensors.is_complex()) and \
                not bool(torch.isfinite(tensors).all()):
            return prefix, tensors
        return None
    if isinstance(tensors, dict):
        items = tensors.items()
    elif isinstance(tensors, (list, tuple)):
        items = enumerate(tensors)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, f'{prefix}.{key}' if prefix else str(key))
        if found is not None:
            return found
    return None


def _quiet(msg: str, level: int = logging.INFO) -> None:
    pass


def checkpoint_iteration(path: str, iters_per_epoch: Optional[int]) -> Optional[int]:
    """Training iterations done when ``epoch_N.pth`` / ``iter_N.pth`` was written, from its name
    (``None`` when it cannot be told)."""
    match = re.match(r'^(epoch|iter)_(\d+)\.pth$', osp.basename(path))
    if match is None:
        return None
    n = int(match[2])
    if match[1] == 'iter':
        return n
    return n * iters_per_epoch if iters_per_epoch else None


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine ``Runner`` that never executes checkpoint content, refuses damaged checkpoints
    and never writes a checkpoint with non-finite weights (see the module docstring).

    Everything else (arguments, ``from_cfg``, hooks, file layout) is mmengine's.
    """

    # ------------------------------------------------------------------ loading
    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        if _is_local_file(filename):
            problem = checkpoint_problem(filename)
            if problem is not None:
                folder = osp.dirname(osp.abspath(filename))
                good = find_resumable_checkpoint(folder, log=_quiet)
                hint = (f'the newest intact checkpoint in {folder} is {good}: pass it instead '
                        '(or --resume without a path to pick it automatically)'
                        if good else f'{folder} has no intact checkpoint to fall back to')
                raise CheckpointIntegrityError(
                    f'checkpoint {filename} {problem}. It was not loaded; {hint}.')
        checkpoint = super().load_checkpoint(filename, map_location, strict, revise_keys)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if isinstance(meta, dict) and 'config' in meta:
            # Runner.resume would run this text through Config.fromstring (= exec).
            meta.pop('config')
            print_log(
                f"{filename}: ignored meta['config'] (config text stored in a checkpoint is "
                'Python code and is never executed by cmid_mm; it only fed a GPU-count check)',
                logger='current', level=logging.WARNING)
        return checkpoint

    # ------------------------------------------------------------------ saving
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs):
        model = unwrap_model(self.model)
        bad = first_non_finite(model.state_dict(), 'state_dict')
        if bad is None and getattr(self, 'optim_wrapper', None) is not None:
            try:
                optim_state = self.optim_wrapper.state_dict()
            except Exception:  # an optim wrapper without state: nothing to check
                optim_state = {}
            bad = first_non_finite(optim_state, 'optimizer')
        if bad is not None:
            name, value = bad
            n_bad = int((~torch.isfinite(value)).sum())
            good = find_resumable_checkpoint(self.work_dir, log=_quiet)
            raise NonFiniteStateError(
                f'not saving {osp.join(out_dir, filename)}: {name} holds {n_bad} non-finite '
                f'value(s) of {value.numel()} after iteration {self.iter}; training has '
                'diverged. ' + (f'The newest intact checkpoint is {good}: resume from it with '
                                f'--resume {good} and a lower lr.' if good else
                                'There is no earlier checkpoint: start over with a lower lr.'))
        return super().save_checkpoint(out_dir, filename, *args, **kwargs)

    # ------------------------------------------------------------------ training
    def build_train_loop(self, loop):
        """mmengine's train loop; its plain ``EpochBasedTrainLoop`` becomes
        :class:`~cmid_mm.engine.hooks.exact_resume_hook.MidEpochResumeLoop` (the same loop,
        resuming a mid-epoch checkpoint at the next batch instead of the epoch's first)."""
        from mmengine.runner import EpochBasedTrainLoop

        from .hooks.exact_resume_hook import MidEpochResumeLoop
        built = super().build_train_loop(loop)
        if isinstance(loop, dict) and type(built) is EpochBasedTrainLoop:
            built.__class__ = MidEpochResumeLoop  # a subclass without state of its own
        return built

    def _iters_per_epoch(self) -> Optional[int]:
        try:
            return len(self.train_dataloader)
        except Exception:
            return None

    def checkpoints_around(self, iteration: int) -> Tuple[List[str], List[str]]:
        """Intact Runner checkpoints of the work dir written after exactly ``iteration``
        iterations (``at``: they hold the weights iteration ``iteration`` used) and after fewer
        (``before``), newest first. Later ones (stale files of an earlier run) are ignored."""
        per_epoch = self._iters_per_epoch()
        at, before = [], []
        for path in runner_checkpoints(self.work_dir):
            done = checkpoint_iteration(path, per_epoch)
            if done is None or done > iteration or checkpoint_problem(path) is not None:
                continue
            (at if done == iteration else before).append(path)
        return at, before

    def train(self):
        if self._train_loop is not None:
            # Before mmengine builds the LR schedulers, which already fail on an empty epoch
            # (see TrainBatchCheckHook); builds the train loop that super().train() reuses.
            from .hooks.train_batch_check_hook import check_train_batches
            check_train_batches(self.train_dataloader, self.model)
        try:
            return super().train()
        except FloatingPointError as e:
            if isinstance(e, NonFiniteStateError):
                raise
            it = MessageHub.get_current_instance().get_info('iter')
            if it is None or not osp.isdir(str(self.work_dir)):
                raise
            same, before = self.checkpoints_around(int(it))
            parts = []
            if same:
                parts.append(f'{same[0]} was written after iteration {it - 1} and holds the '
                             'weights that gave this loss: if this batch is not to blame, '
                             'those weights have diverged and resuming from it fails again')
            if before:
                parts.append(f'the newest checkpoint written before those weights is '
                             f'{before[0]}: resume with --resume {before[0]} and a lower lr')
            elif not same:
                parts.append('the work dir has no checkpoint yet')
            else:
                parts.append('no older checkpoint exists: start over with a lower lr')
            raise FloatingPointError(f'{e} Checkpoints: ' + '; '.join(parts) + '.') from e


# default scope -> the downstream parts a config of that scope may name
_SCOPE_PARTS = {'mmseg': ('seg', 'changedet'), 'mmdet': ('det', ), 'opencd': ('changedet', )}


def import_downstream_for_old_configs(cfg) -> List[str]:
    """Register the downstream parts a pre-0.3 downstream config relied on ``cmid_mm`` for.

    Before the split, ``custom_imports=dict(imports=['cmid_mm'])`` registered every downstream
    module. A config of scope mmseg / mmdet / opencd that lists ``cmid_mm`` but no
    ``cmid_mm.downstream.*`` part gets the parts of its scope imported, with a deprecation
    warning saying what to list instead (kept for one release). Returns the imported parts.
    """
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    parts = _SCOPE_PARTS.get(cfg.get('default_scope'), ())
    if 'cmid_mm' not in imports or not parts or any(
            m.startswith('cmid_mm.downstream.') for m in imports):
        return []
    names = [f'cmid_mm.downstream.{p}' for p in parts]
    for name in names:
        importlib.import_module(name)
    msg = (f"the config lists custom_imports=['cmid_mm'] for {cfg.default_scope} modules; since "
           f'cmid_mm 0.3 `import cmid_mm` registers pretraining only: list {names} in '
           'custom_imports (imported for you now; not in the next release)')
    warnings.warn(msg, DeprecationWarning)
    print_log(msg, logger='current', level=logging.WARNING)
    return names


def build_runner(cfg) -> Runner:
    """The runner of ``cfg``: :class:`SafeRunner` unless the config names another
    ``runner_type`` (built from the registry then; a warning if it is not a SafeRunner)."""
    import_downstream_for_old_configs(cfg)
    if cfg.get('runner_type') in (None, 'SafeRunner'):
        return SafeRunner.from_cfg(cfg)
    runner = RUNNERS.build(cfg)
    if not isinstance(runner, SafeRunner):
        warnings.warn(f'runner_type={cfg.runner_type!r} is not a SafeRunner subclass: the '
                      'checkpoint config-text, CRC and non-finite checks of SafeRunner do not '
                      'apply (see SECURITY.md)')
    return runner
