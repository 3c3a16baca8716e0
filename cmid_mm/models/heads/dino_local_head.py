"""DINO loss of CMID's local branch with its state: centre and teacher temperature
(method.md §5.4)."""
import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DINOLocalHead(BaseModule):
    """DINO loss on matched cells, with teacher centring and a teacher-temperature warm-up.

    The local branch's head, as the global branch's ``QueueContrastiveHead`` (which holds the
    queue) and mmpretrain's ``DINOHead`` (which holds the centre): it owns the loss and its
    state; the projection is the neck (:class:`~cmid_mm.models.necks.CMIDLocalNeck`).

    ``p_t = softmax((teacher - center) / tau_t)`` over the K prototypes (detached),
    ``log p_s = log_softmax(student / student_temp)``; the loss is the mean over batch and cells
    of ``-sum_k p_t * log p_s``.

    The teacher temperature ``tau_t`` (:attr:`cur_teacher_temp`) is set from the training
    progress by :meth:`set_teacher_temp` (``TeacherTempWarmupHook`` calls it); it starts at
    ``warmup_teacher_temp``. The centre (buffer ``center``, saved in checkpoints as
    ``local_head.center``) is moved by :meth:`update_center`, which the algorithm calls after
    the loss.

    Args:
        out_channels (int): number of prototypes K (2048 in CMID).
        student_temp (float): student softmax temperature.
        center_momentum (float): EMA decay of the centre.
        warmup_teacher_temp (float): teacher temperature at epoch 0.
        teacher_temp (float): teacher temperature after the warm-up.
        warmup_teacher_temp_epochs (int): epochs of the linear warm-up; the temperature reaches
            ``teacher_temp`` at this epoch (0 = no warm-up).
    """

    def __init__(self,
                 out_channels: int = 2048,
                 student_temp: float = 0.1,
                 center_momentum: float = 0.9,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp_epochs: int = 50) -> None:
        super().__init__()
        if warmup_teacher_temp_epochs < 0:
            raise ValueError(f'warmup_teacher_temp_epochs must be >= 0 (0 = no warm-up); got '
                             f'{warmup_teacher_temp_epochs}')
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.register_buffer('center', torch.zeros(1, out_channels, 1))
        self.set_teacher_temp(0.)  # defines self.cur_teacher_temp

    def set_teacher_temp(self, epoch_or_progress: float) -> None:
        """Set :attr:`cur_teacher_temp` for a (possibly fractional) epoch.

        Linear from ``warmup_teacher_temp`` at epoch 0 to ``teacher_temp`` at epoch
        ``warmup_teacher_temp_epochs``, then constant.

        Args:
            epoch_or_progress: epochs done, e.g. ``runner.epoch`` or
                ``runner.iter / iters_per_epoch``.
        """
        if epoch_or_progress < 0:
            raise ValueError(f'epoch_or_progress must be >= 0; got {epoch_or_progress}')
        if epoch_or_progress >= self.warmup_teacher_temp_epochs:
            self.cur_teacher_temp = self.teacher_temp
            return
        # start + progress * step, the operation order of numpy's linspace (the reference's
        # schedule), so that equal points give equal floats
        step = (self.teacher_temp - self.warmup_teacher_temp) / self.warmup_teacher_temp_epochs
        self.cur_teacher_temp = self.warmup_teacher_temp + epoch_or_progress * step

    def _check(self, name: str, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.center.shape[1]:
            raise ValueError(f'{name} must be (B, K={self.center.shape[1]}, M) (K = '
                             f'out_channels of the local neck); got {tuple(x.shape)}')

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Cross-entropy from the centred, sharpened teacher to the student (what ``CMID``
        calls).

        Args:
            student: (B, K, M) student local-neck outputs at M matched cells.
            teacher: (B, K, M) teacher outputs at the matched cells (no gradient taken).

        Returns:
            Scalar loss.
        """
        return self._cross_entropy(student, teacher)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`loss` (``head(student, teacher)`` works as the old
        ``DINOLocalLoss`` did)."""
        return self._cross_entropy(student, teacher)

    def _cross_entropy(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        self._check('student', student)
        self._check('teacher', teacher)
        if student.shape != teacher.shape:
            raise ValueError(f'student and teacher must have the same shape; got '
                             f'{tuple(student.shape)} and {tuple(teacher.shape)}')
        p_t = F.softmax((teacher.detach() - self.center) / self.cur_teacher_temp, dim=1)
        log_p_s = F.log_softmax(student / self.student_temp, dim=1)
        return -(p_t * log_p_s).sum(dim=1).mean()

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        """EMA of the batch centre: ``center = m * center + (1 - m) * mean(teacher)``.

        Args:
            teacher: (B, K, M) teacher outputs; averaged over batch and cells, then over ranks
                when distributed.
        """
        self._check('teacher', teacher)
        batch_center = teacher.mean(dim=(0, 2), keepdim=True).to(self.center.dtype)
        all_reduce(batch_center, op='mean')
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
