"""Linear-probe segmentation (method.md section 2) of the I-JEPA ViT-S/14, its EMA target
encoder, on 4 bands (B2, B3, B4, B8) of MADOS (15 classes, 240 x 240; unlabelled pixels and
NaN pixels ignored).

Frozen encoder, PatchLinearSegHead (D -> classes * 14^2), AdamW lr 1e-3 with a cosine decay,
4000 iterations at batch 16, cross-entropy over labelled pixels, mIoU; 240 px inputs, padded
bottom/right to 252 px (label 255), predictions cropped back. Band statistics: the MADOS
authors' reflectance means / stds of B2/B3/B4/B8 (configs/_base_/datasets/mados_240x240.py).

Run (three seeds, every seed's mIoU and the mean +- std)::

    python tools/analysis_tools/linear_probe_seg.py \\
        configs/linear_probe/linear-probe_ijepa-vit-small-p14_1xb16-4k_mados-240px.py \\
        CHECKPOINT --data-root DIR
"""

_base_ = [
    './_base_/linear-probe_ijepa-vit-small-p14_4band.py',
    '../_base_/datasets/mados_240x240.py',
    './_base_/linear-probe_schedule_adamw-1xb16-4k.py',
]
num_classes = {{_base_.num_classes}}

model = dict(
    data_preprocessor=dict(mean={{_base_.band_mean}}, std={{_base_.band_std}}),
    decode_head=dict(num_classes=num_classes),
)
