"""Imported by the DDP test's config: dumps per-rank state after training."""
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    """Before the centre update, keep this rank's local batch mean; at the end,
    save it with the centre and the teacher to ``work_dir/rank{r}.pt``."""
    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = get_ori_model(runner.model).cls_loss
        self.local_mean = loss._pending_sum / loss._pending_count

    def after_train(self, runner):
        model = get_ori_model(runner.model)
        torch.save(dict(local_mean=self.local_mean, center=model.cls_loss.center,
                        teacher=model.teacher.state_dict()),
                   os.path.join(runner.work_dir, f'rank{get_rank()}.pt'))
