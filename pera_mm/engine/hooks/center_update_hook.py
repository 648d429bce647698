from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CenterUpdateHook(Hook):
    """After every step, update the DINO centres from that step's teacher outputs.

    The EMA itself (and the all-reduce of the batch mean across ranks) lives in
    ``DINOClsLoss.update_center``; this hook only decides when it runs.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, loss_names=('cls_loss', 'patch_loss')):
        self.loss_names = loss_names

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = get_ori_model(runner.model)
        for name in self.loss_names:
            loss = getattr(model, name, None)
            if loss is not None:
                loss.update_center()
