"""UPerNet + PerA ViT-B/16 ViT-Adapter, ISPRS Vaihingen (6 classes, IRRG; 512 crops, stride 256;
slide inference on whole test areas).

Recipe of method.md 1.7: AdamW, 200 epochs, total batch 8 (4 GPUs x 2), lr warm-up from 0 over
20 epochs then cosine down to 5e-6, drop path 0.1, weight decay 1e-4, flips + random resized
crop; teacher encoder of the PerA checkpoint. Not in the paper: the Potsdam recipe applied to
Vaihingen. No number has been measured with this config in this repository.
"""

_base_ = [
    '../_base_/models/upernet_pera-vit-adapter-base-p16.py',
    '../_base_/datasets/vaihingen_512x512.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/seg_adamw-200e.py',
]

# the PerA pretraining checkpoint (its teacher backbone is loaded; a file written by
# tools/model_converters/extract_backbone.py or the released layout also works)
pretrained = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(num_classes=6),
    auxiliary_head=dict(num_classes=6),
)

# epoch-based schedule: a finite, shuffled sampler; 2 images per GPU
train_dataloader = dict(batch_size=2, sampler=dict(type='DefaultSampler', shuffle=True))
