"""UPerNet + PerA ViT-B/16 ViT-Adapter on Potsdam with LoRA on the ViT's attention.

The Potsdam recipe of upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py with
the backbone wrapped in ``ViTLoRAModel`` (MMPretrain's ``LoRAModel`` / ``LoRALinear``):
rank-8 LoRA (alpha 16) on the ``qkv`` and ``proj`` linears of the 12 ViT blocks, the ViT's
own weights frozen; the adapter modules (spatial prior, interactions, output norms) and
both heads train in full. Add ``dict(type=r'blocks\\.\\d+\\.mlp\\.fc[12]')`` to
``lora_targets`` for LoRA on the MLP too.

Ours (method.md gives no PEFT recipe): rank 8, alpha 16, the recipe's lr 1e-4 and schedule,
no layer-wise lr decay (rate 1.0). Checkpoints hold the frozen base weights too, so
``tools/test.py`` needs no other file; merge for export with
``tools/model_converters/merge_lora.py`` (docs/parameter_efficient_finetuning.md). No mF1
has been measured with this config in this repository.
"""

_base_ = ['./upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py']

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
