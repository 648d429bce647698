"""Linear-probe segmentation (method.md section 2) of the LatentMIM ViT-S/16, run without the
gap (contiguous 16 px patches), its EMA target encoder, on 4 bands (B2, B3, B4, B8) of GEO-
Bench m-cashew-plant (7 classes, 256 x 256; class 0 "no data" kept).

Frozen encoder, PatchLinearSegHead (D -> classes * 16^2), AdamW lr 1e-3 with a cosine decay,
4000 iterations at batch 16, cross-entropy over labelled pixels, mIoU; 256 px inputs, no
padding. Band statistics: read from <data_root>/band_stats.json when the model is built
(model.band_stats; GEO-Bench ships the file with each task); the tool's --data-root points
it at the new folder, tools/train.py needs --cfg-options model.band_stats.data_root=DIR as
well as the dataloaders' data_root.

Run (three seeds, every seed's mIoU and the mean +- std)::

    python tools/analysis_tools/linear_probe_seg.py \\
        configs/linear_probe/linear-probe_latent-mim-vit-small-p16_1xb16-4k_geobench-m-cashew-plant-256px.py \\
        CHECKPOINT --data-root DIR
"""

_base_ = [
    './_base_/linear-probe_latent-mim-vit-small-p16_4band.py',
    '../_base_/datasets/geobench_m-cashew-plant_256x256.py',
    './_base_/linear-probe_schedule_adamw-1xb16-4k.py',
]
num_classes = {{_base_.num_classes}}

model = dict(
    data_preprocessor=dict(mean={{_base_.band_mean}}, std={{_base_.band_std}}),
    band_stats=dict(data_root={{_base_.data_root}}, bands={{_base_.bands}}),
    decode_head=dict(num_classes=num_classes),
)
