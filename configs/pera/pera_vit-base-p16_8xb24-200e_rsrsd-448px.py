"""PerA ViT-B/16 pretraining at 448 px on RSRSD-style tiles (released-code settings).

8 GPUs x 24 images (the paper's total batch 192); the released code used 16/GPU.
Masks s:l:t = 0.2:0.2:0.6, loss weights DINO 1.0 / KoLeo 0.1 / pixel 0.01.
"""

_base_ = [
    '../_base_/models/pera_vit-base-p16.py',
    '../_base_/datasets/pera_rsrsd-448px.py',
    '../_base_/schedules/pera_adamw-200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    data_preprocessor={{_base_.data_preprocessor}}, backbone=dict(patch_size={{_base_.patch_size}})
)
