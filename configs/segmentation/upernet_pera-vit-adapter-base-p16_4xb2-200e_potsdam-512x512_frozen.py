"""UPerNet + PerA ViT-B/16 ViT-Adapter on Potsdam with the ViT frozen (adapter and heads train).

The Potsdam recipe of upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py with
``frozen_stages=12``: the ViT inside the adapter (patch and position embedding, all 12
blocks) frozen and in eval mode; the spatial prior module, the injectors / extractors,
the output norms, UPerHead and the FCN auxiliary head train with the recipe's lr and layer
decay (adapter parameters get the full lr). ``ParameterCountHook`` logs the trainable and
total counts. No mF1 has been measured with this config in this repository.
"""

_base_ = ['./upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py']

model = dict(backbone=dict(frozen_stages=12))

custom_hooks = [dict(type='mmpretrain.ParameterCountHook')]
