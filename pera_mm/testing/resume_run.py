# Copyright (c) pera-mm contributors. All rights reserved.
"""Kill-and-resume tests: a hook that kills a run after a checkpoint, and a fresh-runner helper.

A test adds ``dict(type='KillAfterEpochHook', epoch=E)`` to ``custom_hooks``,
expects :class:`SimulatedKill` from :func:`run_training`, then runs the same
config again with ``resume=True``.
"""

from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS


class SimulatedKill(RuntimeError):
    """Raised by :class:`KillAfterEpochHook` in place of a killed process."""


@HOOKS.register_module()
class KillAfterEpochHook(Hook):
    """Stops training right after the checkpoint of ``epoch`` is written.

    Args:
        epoch (int): the 1-based epoch after which training stops.
    """

    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise SimulatedKill(f'killed after epoch {self.epoch}')


def unique_experiment_name(work_dir) -> str:
    """A name no earlier run below ``work_dir``'s parent has (MMEngine's instances are global)."""
    work_dir = Path(work_dir)
    return f'{work_dir.name}-{len(list(work_dir.parent.iterdir()))}'


def run_training(cfg, resume=False) -> Runner:
    """Train ``cfg`` with a fresh :class:`Runner` (default scope reset); return the runner.

    Args:
        cfg (Config): the full config; ``cfg.resume`` is set to ``resume``.
        resume (bool): resume from the latest checkpoint in ``cfg.work_dir``.
    """
    cfg.resume = resume
    DefaultScope._instance_dict.clear()
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner
