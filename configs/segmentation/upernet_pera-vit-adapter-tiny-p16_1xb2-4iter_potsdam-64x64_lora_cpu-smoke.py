"""CPU smoke run of the LoRA Potsdam config: the tiny smoke config with the ViT in LoRA.

The LoRA settings of upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512_lora.py
(rank 8, alpha 16, ``qkv`` and ``proj`` of every block) on the tiny adapter; the PerA
checkpoint is ``model.backbone.module.init_cfg.checkpoint``.
"""

_base_ = ['./upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py']

lora_rank = 8
lora_alpha = 16
lora_targets = [dict(type=r'blocks\.\d+\.attn\.qkv'), dict(type=r'blocks\.\d+\.attn\.proj')]

model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTLoRAModel',
        module={{_base_.model.backbone}},
        rank=lora_rank,
        alpha=lora_alpha,
        drop_rate=0.0,
        targets=lora_targets,
    )
)

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=1.0))
custom_hooks = [dict(type='mmpretrain.ParameterCountHook')]
