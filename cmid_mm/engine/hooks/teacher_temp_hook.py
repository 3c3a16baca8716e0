"""Drive the DINO teacher-temperature warm-up of CMID's local loss from the training loop."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class TeacherTempWarmupHook(Hook):
    """Set ``model.local_loss``'s teacher temperature before every training iteration.

    The warm-up (0.04 -> 0.07 over 50 epochs in the paper) is defined in epochs by
    ``DINOLocalLoss``. ``by_epoch=True`` (the reference) changes it once per epoch, using
    ``runner.epoch``; ``by_epoch=False`` changes it every iteration with the fractional epoch
    ``runner.iter / len(train_dataloader)`` (smoother; the only choice for iteration-based
    loops). Both are functions of the loop counters, so resuming restores the exact value.
    """

    priority = 'NORMAL'

    def __init__(self, by_epoch: bool = True) -> None:
        self.by_epoch = by_epoch

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'local_loss'):
            raise AttributeError(f'TeacherTempWarmupHook needs a model with `local_loss` '
                                 f'(CMID); got {type(model).__name__}')
        if self.by_epoch:
            progress = float(runner.epoch)
        else:
            progress = runner.iter / max(len(runner.train_dataloader), 1)
        model.local_loss.set_teacher_temp(progress)
