# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM's per-iteration EMA momentum and similarity target, set before the forward."""

import math
from typing import Sequence

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.errors import PeraConfigError
from .teacher_ema_hook import cosine_momentum


def cosine_decay(it: int, total: int, start: float, end: float) -> float:
    """A half cosine from ``start`` at iteration 0 to ``end`` at ``total``."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * it / total))


@HOOKS.register_module()
class LatentMIMScheduleHook(Hook):
    """Set ``momentum``, ``sim_target`` and ``update_ema`` of a ``LatentMIM`` model.

    Before every training iteration (the model then updates its target
    encoder inside the forward, i.e. BEFORE this iteration's optimizer step,
    as the reference does), with ``t = it / max_iters`` and ``it`` the first
    iteration of the current gradient-accumulation window:

    - EMA momentum ``end - (end - m0) * (1 + cos(pi t)) / 2`` (0.99 -> 1.0);
    - similarity target ``end + (start - end) * (1 + cos(pi t)) / 2`` (0.75 -> 0.25);
    - ``update_ema`` only on the first iteration of each accumulation window.

    The values are pure functions of ``runner.iter``, so a resumed run continues
    exactly. They are logged as ``train/target_momentum`` and ``train/sim_target``.

    A skipped optimizer step (``AutoAmpOptimWrapper.last_step_skipped``) must not
    move the target either, although its EMA already ran in the forward: before an
    iteration that updates the target the hook takes ``model.snapshot_target()``;
    after the iteration that steps the optimizer (the last of an accumulation
    window) it calls ``model.rollback_target()`` when the step was skipped and
    ``model.commit_target()`` otherwise. Both run before any checkpoint is saved.
    A checkpoint saved inside an accumulation window carries the pending
    snapshot under ``CHECKPOINT_KEY``, so a run resumed there can still undo
    the window's EMA.

    Args:
        momentum (float): momentum at iteration 0. Defaults to 0.99.
        end_momentum (float): momentum at the last iteration. Defaults to 1.0.
        sim_target (tuple[float, float]): similarity target at the first and
            last iteration. Defaults to (0.75, 0.25).
    """

    priority = 'ABOVE_NORMAL'
    CHECKPOINT_KEY = 'latent_mim_target_snapshot'

    def __init__(
        self,
        momentum: float = 0.99,
        end_momentum: float = 1.0,
        sim_target: Sequence[float] = (0.75, 0.25),
    ):
        if not 0 <= momentum <= end_momentum <= 1:
            raise PeraConfigError(
                f'LatentMIMScheduleHook: need 0 <= momentum <= end_momentum <= 1, '
                f'got {momentum}, {end_momentum}'
            )
        if len(sim_target) != 2:
            raise PeraConfigError(
                f'LatentMIMScheduleHook: sim_target must be (start, end), got {sim_target!r}'
            )
        self.momentum, self.end_momentum = momentum, end_momentum
        self.sim_start, self.sim_end = (float(v) for v in sim_target)

    def values_at(self, it: int, max_iters: int, accumulation: int = 1):
        """(momentum, sim_target, update_ema) of iteration ``it``."""
        first = it - it % accumulation
        return (
            cosine_momentum(first, max_iters, self.momentum, self.end_momentum),
            cosine_decay(first, max_iters, self.sim_start, self.sim_end),
            it % accumulation == 0,
        )

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Hand this iteration's values to the model."""
        accumulation = getattr(runner.optim_wrapper, '_accumulative_counts', 1)
        m, sim, update = self.values_at(runner.iter, runner.max_iters, accumulation)
        model = get_ori_model(runner.model)
        model.momentum, model.sim_target, model.update_ema = m, sim, update
        if update:
            model.snapshot_target()
        runner.message_hub.update_scalar('train/target_momentum', m)
        runner.message_hub.update_scalar('train/sim_target', sim)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Undo this window's target EMA if its optimizer step was skipped, else keep it."""
        wrapper = runner.optim_wrapper
        if not wrapper.should_update():
            return  # inside an accumulation window: no step was taken or skipped yet
        model = get_ori_model(runner.model)
        if getattr(wrapper, 'last_step_skipped', False):
            model.rollback_target()
        else:
            model.commit_target()

    def before_save_checkpoint(self, runner, checkpoint):
        """Save the pending target snapshot of an open accumulation window.

        Under FSDP each rank holds only its shard of the target, and the checkpoint
        is written by rank 0 alone, so the snapshot is not saved there (a warning
        says so): resume FSDP runs from checkpoints at window boundaries.
        """
        snapshot = get_ori_model(runner.model).pending_target_snapshot()
        if snapshot is None:
            return
        if any('FullyShardedDataParallel' in c.__name__ for c in type(runner.model).__mro__):
            runner.logger.warning(
                'LatentMIMScheduleHook: checkpoint saved inside an accumulation window under '
                'FSDP; its target snapshot is not saved (resume from a window boundary)'
            )
            return
        checkpoint[self.CHECKPOINT_KEY] = snapshot

    def after_load_checkpoint(self, runner, checkpoint):
        """Restore it (a checkpoint without one was saved between windows)."""
        snapshot = checkpoint.get(self.CHECKPOINT_KEY)
        get_ori_model(runner.model).restore_target_snapshot(snapshot)
