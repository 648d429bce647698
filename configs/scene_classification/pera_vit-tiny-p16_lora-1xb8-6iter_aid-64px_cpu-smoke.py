"""CPU smoke run of LoRA fine-tuning: the fine-tuning smoke config with the ViT in LoRA.

The tiny ViT (embed 64, 4 blocks) wrapped in ``ViTLoRAModel`` with the LoRA settings of
pera_vit-base-p16_lora-1xb16-200e_aid-tr20-512px.py (rank 8, alpha 16, ``qkv`` and
``proj``): 4 x 8 x ((64 + 192) + (64 + 64)) = 12,288 LoRA parameters and the head train.
The PerA checkpoint is ``model.backbone.module.init_cfg.checkpoint``.
"""

_base_ = ['./pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py']

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

optim_wrapper = dict(optimizer=dict(lr=1e-2), paramwise_cfg=dict(layer_decay_rate=1.0))
custom_hooks = [dict(type='ParameterCountHook')]
