from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class TeacherTemperatureHook(Hook):
    """Linear warm-up of the teacher softmax temperature, then constant.

    ``temp(it) = start + (end - start) * it / (W - 1)`` for ``it < W`` and ``end``
    afterwards, with ``W`` warm-up iterations (``warmup_epochs`` times the epoch
    length when given in epochs). Defaults: 0.03 -> 0.05 over 30 epochs (ViT-B);
    0.02 -> 0.03 for the large model. Sets the temperature of every loss module
    named in ``loss_names`` that exists on the model.
    """

    def __init__(self, start_temp=0.03, end_temp=0.05, warmup_epochs=None, warmup_iters=None,
                 loss_names=('cls_loss', 'patch_loss')):
        if (warmup_epochs is None) == (warmup_iters is None):
            raise ValueError('TeacherTemperatureHook: give exactly one of warmup_epochs or '
                             'warmup_iters')
        self.start_temp, self.end_temp = start_temp, end_temp
        self.warmup_epochs, self.warmup_iters = warmup_epochs, warmup_iters
        self.loss_names = loss_names

    def temperature_at(self, it, warmup_iters):
        if it >= warmup_iters:
            return self.end_temp
        if warmup_iters <= 1:
            return self.start_temp
        return self.start_temp + (self.end_temp - self.start_temp) * it / (warmup_iters - 1)

    def _warmup_iters(self, runner):
        if self.warmup_iters is not None:
            return self.warmup_iters
        return int(self.warmup_epochs * len(runner.train_dataloader))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        temp = self.temperature_at(runner.iter, self._warmup_iters(runner))
        model = get_ori_model(runner.model)
        for name in self.loss_names:
            loss = getattr(model, name, None)
            if loss is not None:
                loss.teacher_temp = temp
        runner.message_hub.update_scalar('train/teacher_temp', temp)
