"""LoRA fine-tuning of the PerA ViT-B/16 teacher on AID, 20 % train / 80 % test, 512 px.

The fine-tuning config (pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py: data, split,
200 epochs, warm-up + cosine, AdamW) with the ViT wrapped in ``ViTLoRAModel``
(MMPretrain's ``LoRAModel`` / ``LoRALinear``): rank-8 LoRA (alpha 16, scaling 2) on the
``qkv`` and ``proj`` linears of every block; the ViT's own weights frozen, the LoRA
matrices and the LinearClsHead train. For LoRA on the MLP too, add
``dict(type=r'blocks\\.\\d+\\.mlp\\.fc[12]')`` to ``lora_targets``.

Ours (method.md gives no PEFT recipe): rank 8, alpha 16, lr 1e-3 (10x the fine-tuning
lr, a usual LoRA setting), no layer-wise lr decay (rate 1.0), drop path 0.1 kept.
Trainable: 12 x 8 x ((768 + 2304) + (768 + 768)) = 442,368 LoRA parameters + 23,070 of
the head = 465,438 of 86,899,998 (0.536 %). Checkpoints hold the frozen base weights
too, so ``tools/test.py`` needs no other file; merge for export with
``tools/model_converters/merge_lora.py`` (docs/parameter_efficient_finetuning.md).
No accuracy has been measured with this config in this repository.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py']

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

optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=1.0))
custom_hooks = [dict(type='ParameterCountHook')]
