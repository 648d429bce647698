# Copyright (c) pera-mm contributors. All rights reserved.
"""Update the DINO centres once per training iteration."""

from typing import Sequence

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model


@HOOKS.register_module()
class CenterUpdateHook(Hook):
    """After every step, update the DINO centres from that step's teacher outputs.

    The EMA itself (and the all-reduce of the batch mean across ranks) lives in
    ``DINOClsLoss.update_center``; this hook only decides when it runs. When
    the optimizer wrapper skipped the step (``last_step_skipped``, set by
    ``AutoAmpOptimWrapper`` for a non-finite loss or gradient), the step's
    teacher sums are discarded instead, so the centre never sees them. The
    decision is the same on every rank, so the all-reduce inside
    ``update_center`` runs on all ranks or on none.

    Args:
        loss_names (Sequence[str]): attributes of the model holding losses with
            a centre. Defaults to ``('cls_loss', 'patch_loss')``; missing or
            None attributes are ignored.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, loss_names: Sequence[str] = ('cls_loss', 'patch_loss')):
        self.loss_names = loss_names

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Update (or, after a skipped step, discard) the pending centre sums."""
        model = get_ori_model(runner.model)
        skipped = getattr(runner.optim_wrapper, 'last_step_skipped', False)
        for name in self.loss_names:
            loss = getattr(model, name, None)
            if loss is None:
                continue
            if skipped:
                loss.discard_pending()
            else:
                loss.update_center()
