# Copyright (c) pera-mm contributors. All rights reserved.
"""The spatial-affinity schedules: loss weight before, HR teacher EMA / refresh after each step."""

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.errors import PeraConfigError


@HOOKS.register_module()
class SpatialAffinityHook(Hook):
    """Drive a host's ``spatial_affinity`` component from the runner's iteration.

    Before every iteration it sets the component's ``weight`` (``weight_at``).
    After every APPLIED optimizer step it moves the HR teacher: in 'ema' mode by
    one EMA step towards the student encoder (``momentum_at``); in 'snapshot' mode,
    when a refresh is due, by copying the host's EMA teacher or its student. After a
    skipped (non-finite) step nothing changes. Every value is a pure function of
    ``runner.iter``, so a resumed run continues exactly. The schedules' settings
    live in the model's ``spatial_affinity`` config; the hook takes none.

    Priority NORMAL: it runs after the host's ``TeacherEMAHook`` (ABOVE_NORMAL), so a
    snapshot of the EMA teacher includes this iteration's update.
    """

    priority = 'NORMAL'

    @staticmethod
    def component(runner):
        """The model and its ``spatial_affinity`` component (a one-line error without one)."""
        model = get_ori_model(runner.model)
        sa = getattr(model, 'spatial_affinity', None)
        if sa is None:
            raise PeraConfigError(
                f'SpatialAffinityHook: the model {type(model).__name__} has no '
                f'spatial_affinity; set model.spatial_affinity or remove the hook'
            )
        return model, sa

    def before_train(self, runner):
        """Fail early when the model has no component."""
        self.component(runner)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Set this iteration's loss weight."""
        _, sa = self.component(runner)
        sa.weight = sa.weight_at(runner.iter, runner.max_iters)
        runner.message_hub.update_scalar('train/sa_weight', sa.weight)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """EMA step or snapshot refresh of the HR teacher, once per applied optimizer step."""
        wrapper = runner.optim_wrapper
        if not wrapper.should_update():
            return  # inside an accumulation window: the student has not moved yet
        if getattr(wrapper, 'last_step_skipped', False):
            return  # the student did not move, nor does the HR teacher
        model, sa = self.component(runner)
        sources = model.spatial_affinity_sources()
        if sa.mode == 'ema':
            m = sa.momentum_at(runner.iter, runner.max_iters)
            sa.ema_update(sources['student'], m)
            runner.message_hub.update_scalar('train/sa_momentum', m)
        elif sa.refresh_due(runner.iter):
            sa.sync(sources[sa.snapshot_source])
