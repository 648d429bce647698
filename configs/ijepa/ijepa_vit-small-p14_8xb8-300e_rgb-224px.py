"""I-JEPA ViT-S/14 on RGB tiles, the paper's settings (method.md section 2).

Predictor depth 12 at width 384, lr 1e-3 (warm-up from 2e-4 over 40 epochs, cosine to
1e-6), batch 64 (8 GPUs x 8), weight decay 0.04 -> 0.4, 300 epochs, EMA 0.996 -> 1.0.
"""

_base_ = [
    '../_base_/models/ijepa_vit-small-p14.py',
    '../_base_/datasets/ijepa_rgb-224px.py',
    '../_base_/schedules/ijepa_adamw-300e.py',
    '../_base_/default_runtime.py',
]
