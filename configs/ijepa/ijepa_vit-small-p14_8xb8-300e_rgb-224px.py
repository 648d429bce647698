"""I-JEPA ViT-S/14 on RGB tiles.

The paper's settings (method.md section 2): predictor depth 12 at width 384, lr 1e-3 with
cosine decay, batch 64 (8 GPUs x 8), weight decay 0.04, 300 epochs. The I-JEPA reference's
own schedule shapes, which method.md does not give: warm-up from 2e-4 over 40 epochs, cosine
to 1e-6, weight decay rising 0.04 -> 0.4 on the decayed groups, EMA 0.996 -> 1.0 (linear).
"""

_base_ = [
    '../_base_/models/ijepa_vit-small-p14.py',
    '../_base_/datasets/ijepa_rgb-224px.py',
    '../_base_/schedules/ijepa_adamw-300e.py',
    '../_base_/default_runtime.py',
]
