from .exact_resume_hook import ExactResumeHook
from .cmid_vis_hook import CMIDVisualizationHook
from .skipped_images_hook import SkippedImagesHook
from .teacher_temp_hook import TeacherTempWarmupHook
from .pretrained_check_hook import PretrainedLoadCheckHook  # noqa: F401  (mmengine root HOOKS)

__all__ = ['ExactResumeHook', 'TeacherTempWarmupHook', 'CMIDVisualizationHook',
           'SkippedImagesHook']
