from .auto_amp_optim_wrapper import AutoAmpOptimWrapper, amp_device_available

__all__ = ['AutoAmpOptimWrapper', 'amp_device_available']
