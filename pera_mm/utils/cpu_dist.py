"""Run ``--launcher pytorch`` (torchrun) jobs on machines without a GPU.

MMEngine's ``init_dist('pytorch')`` always calls ``torch.cuda.set_device``,
and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on
CPU. For CPU-only debugging and CI, :func:`setup_cpu_distributed` starts the
process group itself with the gloo backend (the Runner then skips
``init_dist``) and makes the DDP wrapper CPU-friendly (``device_ids=None``).

torch's ``SyncBatchNorm`` raises on CPU tensors once a process group exists, so on
this path every ``SyncBN`` norm of the model config (``norm_cfg=dict(type='SyncBN')``
in the GPU segmentation/detection configs) becomes plain ``BN`` (per-process batch
statistics), and a ``sync_bn`` request is dropped, each with a log line.
"""

import datetime
import logging

import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from .device import amp_device_available

#: norm types that synchronise over processes (torch's and mmcv's)
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'nn.SyncBatchNorm', 'SyncBatchNorm')


def _replace_sync_bn(node, path: str, found: list):
    if isinstance(node, (dict, ConfigDict)):
        if node.get('type') in SYNC_BN_TYPES:
            found.append(path or '<root>')
            node['type'] = 'BN'
        for key, value in node.items():
            _replace_sync_bn(value, f'{path}.{key}' if path else str(key), found)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _replace_sync_bn(value, f'{path}[{i}]', found)


def convert_sync_bn_to_bn(cfg: Config) -> list:
    """Turn every SyncBN norm config of ``cfg.model`` / ``cfg.tta_model`` into ``BN``.

    Also drops ``cfg.sync_bn`` (the Runner's BN -> SyncBN conversion). Logs one line
    when anything changed.

    Args:
        cfg (Config): the merged config (changed in place).

    Returns:
        list[str]: the config paths of the converted norms.
    """
    found = []
    for field in ('model', 'tta_model'):
        if cfg.get(field) is not None:
            _replace_sync_bn(cfg[field], field, found)
    if cfg.get('sync_bn') is not None:
        found.append(f'sync_bn={cfg.sync_bn!r}')
        cfg.sync_bn = None
    if found:
        shown = ', '.join(found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')
        print_log(
            f'CPU distributed run (gloo): SyncBN is not supported on CPU tensors, using BN '
            f'(per-process batch statistics) instead for {len(found)} norm config(s): {shown}',
            logger='current',
            level=logging.WARNING,
        )
    return found


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a ``launcher='pytorch'`` config for CPU-only processes.

    A no-op (returns False) with another launcher, with an accelerator, or
    when the process group already exists. Otherwise initialises gloo from
    the torchrun environment (``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE`` ...),
    records ``env_cfg.dist_cfg.backend='gloo'`` and sets ``device_ids=None``
    on a DDP ``model_wrapper_cfg`` (``device_id='cpu'`` on an FSDP strategy's
    wrapper), turns SyncBN norms into BN (:func:`convert_sync_bn_to_bn`); returns True.
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
    convert_sync_bn_to_bn(cfg)

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
