"""UPerNet + PerA slim ViT-G/16-1024 ViT-Adapter, ISPRS Potsdam (6 classes, RGB; 512 crops,
stride 256, of the 24 training tiles; slide inference on the 14 whole test tiles).

Recipe of method.md 1.7: AdamW, 200 epochs, total batch 8 (4 GPUs x 2), lr warm-up from 0 over
20 epochs then cosine down to 5e-6, drop path 0.1, weight decay 1e-4, flips + random resized
crop; teacher encoder of the PerA checkpoint. The paper reports mF1 93.08 (method.md 1.7 does
not say whether over 5 or 6 classes: compare with mF1_no_clutter, the usual ISPRS figure, and
mF1). No number has been measured with this config in this repository.
"""

_base_ = [
    '../_base_/models/upernet_pera-vit-adapter-giant1024-p16.py',
    '../_base_/datasets/potsdam_512x512.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/seg_adamw-200e.py',
]

# the PerA pretraining checkpoint (its teacher backbone is loaded; a file written by
# tools/model_converters/extract_backbone.py or the released layout also works)
pretrained = 'work_dirs/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(num_classes=6),
    auxiliary_head=dict(num_classes=6),
)

# epoch-based schedule: a finite, shuffled sampler; 2 images per GPU
train_dataloader = dict(batch_size=2, sampler=dict(type='DefaultSampler', shuffle=True))
