from .center_update_hook import CenterUpdateHook
from .collapse_monitor_hook import CollapseMonitorHook
from .latent_mim_schedule_hook import LatentMIMScheduleHook
from .linear_teacher_ema_hook import LinearTeacherEMAHook
from .parameter_count_hook import ParameterCountHook
from .random_state_hook import RandomStateHook
from .skipped_image_report_hook import SkippedImageReportHook
from .spatial_affinity_hook import SpatialAffinityHook
from .teacher_ema_hook import TeacherEMAHook
from .teacher_temperature_hook import TeacherTemperatureHook

__all__ = [
    'CenterUpdateHook',
    'CollapseMonitorHook',
    'RandomStateHook',
    'SkippedImageReportHook',
    'TeacherEMAHook',
    'TeacherTemperatureHook',
    'LatentMIMScheduleHook',
    'LinearTeacherEMAHook',
    'SpatialAffinityHook',
    'ParameterCountHook',
]
