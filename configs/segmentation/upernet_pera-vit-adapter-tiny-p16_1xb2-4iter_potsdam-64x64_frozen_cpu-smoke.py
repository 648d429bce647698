"""CPU smoke run of the frozen-ViT Potsdam config: the tiny smoke config, ViT frozen.

``frozen_stages=4`` freezes the tiny ViT inside the adapter (embeddings, 4 blocks); the
adapter modules and heads train. ``ParameterCountHook`` logs the counts.
"""

_base_ = ['./upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py']

model = dict(backbone=dict(frozen_stages=4))

custom_hooks = [dict(type='mmpretrain.ParameterCountHook')]
