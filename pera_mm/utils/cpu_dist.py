"""Run ``--launcher pytorch`` (torchrun) jobs on machines without a GPU.

MMEngine's ``init_dist('pytorch')`` always calls ``torch.cuda.set_device``,
and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on
CPU. For CPU-only debugging and CI, :func:`setup_cpu_distributed` starts the
process group itself with the gloo backend (the Runner then skips
``init_dist``) and makes the DDP wrapper CPU-friendly (``device_ids=None``).
"""

import datetime

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from .device import amp_device_available


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a ``launcher='pytorch'`` config for CPU-only processes.

    A no-op (returns False) with another launcher, with an accelerator, or
    when the process group already exists. Otherwise initialises gloo from
    the torchrun environment (``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE`` ...),
    records ``env_cfg.dist_cfg.backend='gloo'`` and sets ``device_ids=None``
    on a DDP ``model_wrapper_cfg`` (``device_id='cpu'`` on an FSDP strategy's
    wrapper); returns True.
    """
    if (
        cfg.get('launcher', 'none') != 'pytorch'
        or amp_device_available()
        or torch_dist.is_initialized()
    ):
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    timeout = dist_cfg.get('timeout')
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(backend='gloo', **kwargs)

    strategy = cfg.get('strategy')
    if (
        cfg.get('runner_type') == 'FlexibleRunner'
        and strategy is not None
        and 'FSDP' in str(strategy.get('type', ''))
    ):
        # MMEngine passes device_id=LOCAL_RANK (a CUDA index); FSDP shards on
        # the CPU only when told so explicitly.
        strategy.setdefault('model_wrapper', {})['device_id'] = 'cpu'
        return True

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # MMEngine's default wrapper, minus the GPU device id.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
        wrapper = cfg.model_wrapper_cfg
    wrapper_type = wrapper.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if wrapper_type is None or issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
    return True
