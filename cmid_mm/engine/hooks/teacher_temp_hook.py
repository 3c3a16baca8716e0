"""Drive the DINO teacher-temperature warm-up of CMID's local loss from the training loop."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from cmid_mm.models.utils.wrappers import unwrap_model


@HOOKS.register_module()
class TeacherTempWarmupHook(Hook):
    """Set ``model.local_head``'s teacher temperature before every training iteration.

    The warm-up (0.04 -> 0.07 over 50 epochs in the paper) is defined in epochs by
    ``DINOLocalHead``. ``by_epoch=True`` (the reference) changes it once per epoch, using
    ``runner.epoch``; ``by_epoch=False`` changes it every iteration with the fractional epoch
    ``runner.iter / len(train_dataloader)`` (smoother; the only choice for iteration-based
    loops). Both are functions of the loop counters, so resuming restores the exact value.

    ``epoch_offset`` is added to that progress. The reference's schedule is one epoch ahead
    of its nominal one (docs/differences_from_reference.md): at epoch ``e`` it uses entry
    ``e + 1`` of ``linspace(0.04, 0.07, 50)``, i.e. 0.040612 at epoch 0 and 0.07 from epoch
    48 on. ``TeacherTempWarmupHook(by_epoch=True, epoch_offset=1)`` with the head's
    ``warmup_teacher_temp_epochs=49`` gives exactly those values.

    Args:
        by_epoch (bool): change the temperature once per epoch (True) or every iteration.
        epoch_offset (int): epochs added to the progress before the schedule is read
            (0 = the paper's schedule; 1 = the reference run's, see above). Must be >= 0.
    """

    priority = 'NORMAL'

    def __init__(self, by_epoch: bool = True, epoch_offset: int = 0) -> None:
        if epoch_offset < 0:
            raise ValueError(f'TeacherTempWarmupHook: epoch_offset must be >= 0; got '
                             f'{epoch_offset}')
        self.by_epoch = by_epoch
        self.epoch_offset = epoch_offset

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = unwrap_model(runner.model)
        head = getattr(model, 'local_head', None)
        if not hasattr(head, 'set_teacher_temp'):
            raise AttributeError(f'TeacherTempWarmupHook needs a model with `local_head` '
                                 f'(CMID, a DINOLocalHead); got {type(model).__name__}')
        if self.by_epoch:
            progress = float(runner.epoch)
        else:
            progress = runner.iter / max(len(runner.train_dataloader), 1)
        head.set_teacher_temp(progress + self.epoch_offset)
