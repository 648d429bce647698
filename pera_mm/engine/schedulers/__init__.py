from .warmup_cosine_scheduler import WarmupCosineParamScheduler

__all__ = ['WarmupCosineParamScheduler']
