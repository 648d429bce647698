# Copyright (c) pera-mm contributors. All rights reserved.
"""Log the trainable and total parameter counts when training starts."""

from collections import OrderedDict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def parameter_counts(model) -> 'OrderedDict':
    """``{top-level module: (trainable, total)}`` of ``model``, plus ``'lora'`` and ``'all'``.

    Shared parameters count once (``named_parameters`` de-duplicates); the
    ``'lora'`` entry counts LoRA parameters (names with ``.lora_``) anywhere.
    """
    counts = OrderedDict()
    lora = [0, 0]
    for name, param in model.named_parameters():
        part = name.split('.', 1)[0]
        trainable, total = counts.get(part, (0, 0))
        n = param.numel()
        counts[part] = (trainable + n * param.requires_grad, total + n)
        if '.lora_' in name:
            lora = [lora[0] + n * param.requires_grad, lora[1] + n]
    counts['lora'] = tuple(lora)
    counts['all'] = tuple(map(sum, zip(*[v for k, v in counts.items() if k != 'lora'])))
    return counts


@HOOKS.register_module()
class ParameterCountHook(Hook):
    """Log trainable / total parameters, overall and per top-level module.

    For parameter-efficient fine-tuning (frozen backbone, LoRA): the line shows
    what the optimizer updates. Logged once, before the first iteration, after
    the weights are initialised and any checkpoint is loaded.
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        counts = parameter_counts(model)
        trainable, total = counts.pop('all')
        lora = counts.pop('lora')
        parts = ', '.join(f'{k} {t:,}/{n:,}' for k, (t, n) in counts.items())
        share = 100.0 * trainable / max(total, 1)
        runner.logger.info(
            f'parameters: trainable {trainable:,} of {total:,} ({share:.3f} %); '
            f'LoRA {lora[1]:,}; per module (trainable/total): {parts}'
        )
