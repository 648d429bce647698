"""LatentMIM ViT-S/16, the paper's host setting (method.md section 2).

Decoder depth 3, lr 1.5e-4, batch 128, weight decay 0.05, 300 epochs, 280 px inputs
(14 x 14 cells of 16 px windows with a 4 px gap), 20 visible patches.
"""

_base_ = [
    '../_base_/models/latent_mim_vit-small-p16.py',
    '../_base_/datasets/latent_mim_rsrsd-280px.py',
    '../_base_/schedules/latent_mim_adamw-300e.py',
    '../_base_/default_runtime.py',
]
