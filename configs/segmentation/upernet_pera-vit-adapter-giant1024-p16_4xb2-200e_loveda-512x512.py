"""UPerNet + PerA slim ViT-G/16-1024 ViT-Adapter, LoveDA (7 classes, 1024x1024; official train /
val, slide inference on whole images).

Recipe of method.md 1.7: AdamW, 200 epochs, total batch 8 (4 GPUs x 2), lr warm-up from 0 over
20 epochs then cosine down to 5e-6, drop path 0.1, weight decay 1e-4, flips + random resized
crop; teacher encoder of the PerA checkpoint. The paper reports test mIoU 54.02 (from the test
server: see loveda_512x512_test-server.py). No number has been measured with this config in
this repository.
"""

_base_ = [
    '../_base_/models/upernet_pera-vit-adapter-giant1024-p16.py',
    '../_base_/datasets/loveda_512x512.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/seg_adamw-200e.py',
]

# the PerA pretraining checkpoint (its teacher backbone is loaded; a file written by
# tools/model_converters/extract_backbone.py or the released layout also works)
pretrained = 'work_dirs/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(num_classes=7),
    auxiliary_head=dict(num_classes=7),
)

# epoch-based schedule: a finite, shuffled sampler; 2 images per GPU
train_dataloader = dict(batch_size=2, sampler=dict(type='DefaultSampler', shuffle=True))

# LoveDA: the paper's maximum lr is 5e-5 (then down to 5e-6)
optim_wrapper = dict(optimizer=dict(lr=5e-5))
