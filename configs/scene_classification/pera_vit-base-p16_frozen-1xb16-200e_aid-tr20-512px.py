"""Frozen-backbone fine-tuning of the PerA ViT-B/16 teacher on AID, 20 % / 80 %, 512 px.

The PEFT baseline next to the LoRA config: the fine-tuning recipe (data, 200 epochs,
warm-up + cosine, AdamW at the LoRA config's lr 1e-3) with the whole ViT frozen
(``frozen_stages=12``: embeddings, cls token, every block and the final norm, in eval
mode), so that only the LinearClsHead (23,070 parameters) trains. The SGD linear-probe
protocol is pera_vit-base-p16_linear-1xb16-100e_aid-tr20-512px.py. ``ParameterCountHook``
logs the trainable / total counts. No accuracy has been measured with this config here.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py']

model = dict(backbone=dict(drop_path_rate=0.0, frozen_stages=12))

optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=1.0))
custom_hooks = [dict(type='ParameterCountHook')]
