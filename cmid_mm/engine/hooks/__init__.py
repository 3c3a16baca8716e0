from .teacher_temp_hook import TeacherTempWarmupHook

__all__ = ['TeacherTempWarmupHook']
