from .ijepa_warmup_cosine_scheduler import IJEPAWarmupCosineParamScheduler
from .warmup_cosine_base import WarmupCosineSchedulerBase
from .warmup_cosine_floor_scheduler import WarmupCosineFloorParamScheduler
from .warmup_cosine_scheduler import WarmupCosineParamScheduler

__all__ = [
    'WarmupCosineParamScheduler',
    'WarmupCosineFloorParamScheduler',
    'IJEPAWarmupCosineParamScheduler',
    'WarmupCosineSchedulerBase',
]
