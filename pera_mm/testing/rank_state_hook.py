# Copyright (c) pera-mm contributors. All rights reserved.
"""A hook for distributed tests: each rank dumps what must agree across ranks.

A test config imports it with
``custom_imports=dict(imports=['pera_mm', 'pera_mm.testing.rank_state_hook'])``.
"""

import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    """Keep this rank's local batch mean before the centre update; at the end of
    training, save it with the centre and the teacher to ``work_dir/rank{r}.pt``.

    The local mean is what the rank would contribute to the centre: ranks seeing
    different images must hold different local means yet the same all-reduced
    centre and teacher.
    """

    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = get_ori_model(runner.model).cls_loss
        self.local_mean = loss._pending_sum / loss._pending_count

    def after_train(self, runner):
        model = get_ori_model(runner.model)
        torch.save(
            dict(
                local_mean=self.local_mean,
                center=model.cls_loss.center,
                teacher=model.teacher.state_dict(),
            ),
            os.path.join(runner.work_dir, f'rank{get_rank()}.pt'),
        )
