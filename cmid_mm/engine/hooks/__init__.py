from .exact_resume_hook import ExactResumeHook
from .preemption_hook import PreemptionHook  # noqa: F401
from .cmid_vis_hook import CMIDVisualizationHook
from .skipped_images_hook import SkippedImagesHook
from .teacher_temp_hook import TeacherTempWarmupHook
from .train_batch_check_hook import TrainBatchCheckHook  # noqa: F401
from .pretrained_check_hook import PretrainedLoadCheckHook  # noqa: F401  (mmengine root HOOKS)

__all__ = ['ExactResumeHook', 'TeacherTempWarmupHook', 'CMIDVisualizationHook',
           'SkippedImagesHook']
