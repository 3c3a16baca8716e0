"""Checkpoint and stop on a preemption signal; requeue the Slurm job.

A cluster that takes a node back (Slurm preemption with ``GraceTime``, the time limit,
``scancel --signal``) signals the job first and kills it later. On such a signal this hook
lets the trainer finish the iteration it is in, writes a complete checkpoint of that position
(``iter_N.pth`` in the middle of an epoch; ``last_checkpoint`` names it) and stops the process
with ``exit_code`` (75, ``EX_TEMPFAIL``: "try again"). With ``MidEpochResumeLoop`` (built by
``SafeRunner``) and ``ExactResumeHook``, ``--resume`` continues from it bit for bit.

On a *requeue* signal (default ``SIGUSR1``: ``sbatch --signal=USR1@120``) inside a Slurm batch
job, rank 0 also asks Slurm to requeue the job (``scontrol requeue $SLURM_JOB_ID``) once the
checkpoint is written; the requeued job starts again with ``SLURM_RESTART_COUNT`` >= 1 and
``tools/slurm_train.sh`` then adds ``--resume``. ``SIGTERM`` (cancel, time limit, preemption)
checkpoints and stops but does not requeue: a cancelled job must stay cancelled, and a job
preempted with ``PreemptMode=REQUEUE`` is requeued by Slurm itself.

With several processes the ranks agree every iteration (one all-reduce of one integer) on
whether any of them was signalled, so all stop after the same iteration.
"""
import atexit
import os
import signal
import subprocess
import threading
from typing import Dict, Optional, Sequence

import torch
from mmengine.dist import all_reduce, barrier, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmpretrain.registry import HOOKS

STOP, REQUEUE = 1, 2  # flags, combined with max over ranks (REQUEUE implies STOP)


class Preempted(SystemExit):
    """Raised after the preemption checkpoint is written; its ``code`` is the exit status."""


def _signal_number(name) -> int:
    if isinstance(name, int) and not isinstance(name, bool):
        return int(signal.Signals(name))
    text = str(name).upper()
    text = text if text.startswith('SIG') else 'SIG' + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise ValueError(f'PreemptionHook: unknown signal {name!r}; use names such as '
                         "'SIGTERM', 'SIGUSR1', 'USR2' or numbers") from None


class _WorkersIgnore:
    """``worker_init_fn`` wrapper: the data-loader worker ignores ``signals`` while the trainer
    runs, and exits (status 0) on them once the trainer has set ``stopping``.

    torch's workers install a SIGTERM handler that ends them; a signal sent to every process
    of the job (Slurm, torchrun) would then kill them while the trainer still needs the batch
    of the iteration it finishes, and the trainer would fail on the lost worker. Ignoring the
    signal for good would instead hang the trainer's exit: Python's multiprocessing stops
    daemonic children at exit with SIGTERM and waits for them. So the trainer sets
    ``stopping`` (shared memory) when it stops, before that (``atexit``), and the workers then
    leave on the signal.
    """

    def __init__(self, signals, stopping, inner=None) -> None:
        self.signals, self.stopping, self.inner = list(signals), stopping, inner

    def __call__(self, worker_id: int) -> None:
        stopping = self.stopping

        def handler(signum, frame):
            if int(stopping[0]):
                os._exit(0)

        for signum in self.signals:
            signal.signal(signum, handler)
        if self.inner is not None:
            self.inner(worker_id)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Checkpoint after the current iteration and exit on a signal; see the module docstring.

    Args:
        signals (Sequence[str | int]): signals that checkpoint and stop. Default
            ``('SIGTERM', 'SIGUSR1')``. ``SIGKILL`` cannot be caught.
        requeue_signals (Sequence[str | int]): those of ``signals`` after which the Slurm job
            is requeued (when ``requeue`` allows it). Default ``('SIGUSR1',)``.
        requeue (bool | str): ``'auto'`` (default): ``scontrol requeue $SLURM_JOB_ID`` when
            the process runs in a Slurm job; ``False``: never (e.g. when the job script or
            the cluster's ``RequeueExit`` does it).
        exit_code (int): exit status after the checkpoint. Default 75 (``EX_TEMPFAIL``).
    """

    priority = 'LOWEST'  # after CheckpointHook and the schedulers: the iteration is complete

    def __init__(self,
                 signals: Sequence = ('SIGTERM', 'SIGUSR1'),
                 requeue_signals: Sequence = ('SIGUSR1', ),
                 requeue='auto',
                 exit_code: int = 75) -> None:
        self.signals = [_signal_number(s) for s in signals]
        self.requeue_signals = {_signal_number(s) for s in requeue_signals}
        if signal.SIGKILL in self.signals or signal.SIGSTOP in self.signals:
            raise ValueError('PreemptionHook: SIGKILL and SIGSTOP cannot be caught; remove '
                             'them from `signals`')
        unknown = self.requeue_signals - set(self.signals)
        if unknown:
            raise ValueError(
                f'PreemptionHook: requeue_signals {sorted(signal.Signals(s).name for s in unknown)}'
                ' are not in `signals`; add them there or remove them')
        if requeue not in ('auto', True, False):
            raise ValueError(f"PreemptionHook: requeue must be 'auto', True or False; got "
                             f'{requeue!r}')
        self.requeue = requeue
        self.exit_code = int(exit_code)
        self._flag = 0
        self._signal: Optional[int] = None
        self._pid: Optional[int] = None
        self._previous: Dict[int, object] = {}
        self._stopping: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            return  # a forked process (before its worker_init_fn ignores the signal)
        self._signal = signum
        self._flag = max(self._flag, REQUEUE + STOP if signum in self.requeue_signals else STOP)

    def before_train(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionHook: training runs outside the main thread, '
                                  'where signal handlers cannot be installed; disabled')
            return
        self._pid = os.getpid()
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 0) and not isinstance(loader.worker_init_fn,
                                                                 _WorkersIgnore):
            self._stopping = torch.zeros(1, dtype=torch.uint8).share_memory_()
            loader.worker_init_fn = _WorkersIgnore(self.signals, self._stopping,
                                                   loader.worker_init_fn)
            atexit.register(self._release_workers)  # runs before multiprocessing's own
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        names = ', '.join(signal.Signals(s).name for s in self.signals)
        runner.logger.info(f'PreemptionHook: on {names} the run writes a checkpoint after the '
                           f'current iteration and exits with status {self.exit_code}')

    def _release_workers(self) -> None:
        if self._stopping is not None:
            self._stopping[0] = 1

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def after_train(self, runner) -> None:
        self._restore()

    # ------------------------------------------------------------------ stopping
    def _agreed_flag(self) -> int:
        if get_world_size() == 1:
            return self._flag
        flag = torch.tensor([self._flag], dtype=torch.int64)
        all_reduce(flag, op='max')  # every rank stops after the same iteration
        return int(flag)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        flag = self._agreed_flag()
        if not flag:
            return
        what = signal.Signals(self._signal).name if self._signal else 'another rank'
        path = self._save(runner)
        barrier()  # the checkpoint is complete before any rank exits
        runner.logger.warning(
            f'PreemptionHook: {what} received; wrote {path} after iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}, batch {batch_idx + 1} of '
            f'{len(runner.train_dataloader)}); stopping with exit status {self.exit_code}. '
            'Continue with --resume.')
        if flag >= REQUEUE + STOP and is_main_process():
            self._requeue(runner)
        barrier()
        self._restore()
        self._release_workers()
        if get_world_size() > 1:  # as at the normal end (tools/train.py): else the exit hangs
            from cmid_mm.utils import release_distributed
            release_distributed(runner)
        raise Preempted(self.exit_code)

    def _save(self, runner) -> str:
        ckpt_hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        out_dir = getattr(ckpt_hook, 'out_dir', None) or runner.work_dir
        filename = f'iter_{runner.iter + 1}.pth'
        path = os.path.join(out_dir, filename)
        kwargs = {}
        if ckpt_hook is not None:
            kwargs = dict(save_optimizer=ckpt_hook.save_optimizer,
                          save_param_scheduler=ckpt_hook.save_param_scheduler)
        runner.message_hub.update_info('last_ckpt', path)
        runner.save_checkpoint(out_dir, filename, by_epoch=False, **kwargs)
        if is_main_process():
            with open(os.path.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(path)
        return path

    def _requeue(self, runner) -> None:
        job = os.environ.get('SLURM_JOB_ID')
        if self.requeue is False or (self.requeue == 'auto' and not job):
            runner.logger.info('PreemptionHook: not in a Slurm job; not requeued')
            return
        cmd = ['scontrol', 'requeue', str(job)]
        try:
            # The requeue makes Slurm send SIGTERM to every process of the job, scontrol
            # included: it could die of it after the request was done but before it exits,
            # and its status would then say "failed" for a job that was requeued. An ignored
            # signal stays ignored across exec, so scontrol lives to report its own status
            # (set by sh, not by a preexec_fn, which is unsafe in a process with threads).
            res = subprocess.run(['sh', '-c', 'trap "" TERM; exec "$0" "$@"', *cmd],
                                 capture_output=True, text=True, timeout=60)
            ok, detail = res.returncode == 0, (res.stdout + res.stderr).strip()
            if not ok:
                detail = f'exit status {res.returncode}: {detail or "no output"}'
        except (OSError, subprocess.SubprocessError) as e:
            ok, detail = False, str(e)
        if ok:
            runner.logger.warning(f'PreemptionHook: requeued Slurm job {job} '
                                  f'(`{" ".join(cmd)}`)')
        else:
            runner.logger.error(
                f'PreemptionHook: `{" ".join(cmd)}` failed ({detail}); the job '
                'is not requeued: submit it again (tools/slurm_train.sh adds --resume on a '
                'requeued job; otherwise pass --resume), and check that it was submitted '
                'with sbatch --requeue')
