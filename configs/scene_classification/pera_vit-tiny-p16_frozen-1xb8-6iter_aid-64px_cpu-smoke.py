"""CPU smoke run of frozen-backbone fine-tuning: the fine-tuning smoke config, ViT frozen.

``frozen_stages=4`` (every block of the tiny ViT, its embeddings and final norm), the
smoke AdamW schedule at lr 1e-2 on the head only, ``ParameterCountHook`` in the log.
"""

_base_ = ['./pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py']

model = dict(backbone=dict(frozen_stages=4))

optim_wrapper = dict(optimizer=dict(lr=1e-2), paramwise_cfg=dict(layer_decay_rate=1.0))
custom_hooks = [dict(type='ParameterCountHook')]
