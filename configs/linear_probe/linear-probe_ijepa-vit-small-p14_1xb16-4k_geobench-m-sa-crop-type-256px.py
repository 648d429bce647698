"""Linear-probe segmentation (method.md section 2) of the I-JEPA ViT-S/14, its EMA target
encoder, on 4 bands (B2, B3, B4, B8) of GEO-Bench m-SA-crop-type (10 classes, 256 x 256;
class 0 "No Data" kept).

Frozen encoder, PatchLinearSegHead (D -> classes * 14^2), AdamW lr 1e-3 with a cosine decay,
4000 iterations at batch 16, cross-entropy over labelled pixels, mIoU; 256 px inputs, padded
bottom/right to 266 px (label 255), predictions cropped back. Band statistics: read from
<data_root>/band_stats.json when the model is built (model.band_stats; GEO-Bench ships the
file with each task); the tool's --data-root points it at the new folder, tools/train.py
needs --cfg-options model.band_stats.data_root=DIR as well as the dataloaders' data_root.

Run (three seeds, every seed's mIoU and the mean +- std)::

    python tools/analysis_tools/linear_probe_seg.py \\
        configs/linear_probe/linear-probe_ijepa-vit-small-p14_1xb16-4k_geobench-m-sa-crop-type-256px.py \\
        CHECKPOINT --data-root DIR
"""

_base_ = [
    './_base_/linear-probe_ijepa-vit-small-p14_4band.py',
    '../_base_/datasets/geobench_m-sa-crop-type_256x256.py',
    './_base_/linear-probe_schedule_adamw-1xb16-4k.py',
]
num_classes = {{_base_.num_classes}}

model = dict(
    data_preprocessor=dict(mean={{_base_.band_mean}}, std={{_base_.band_std}}),
    band_stats=dict(data_root={{_base_.data_root}}, bands={{_base_.bands}}),
    decode_head=dict(num_classes=num_classes),
)
