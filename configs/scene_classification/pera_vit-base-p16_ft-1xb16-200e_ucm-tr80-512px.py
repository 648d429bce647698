"""Full fine-tuning of the PerA ViT-B/16 teacher on UC Merced, 80 % train / 20 % test, 512 px.

method.md section 1.7: images resized to 512 (UCM is 256 px: upsampled), AdamW,
cross-entropy, 200 epochs, batch 16, lr 5e-5, weight decay 1e-4, drop path 0.3,
flips + random crop + colour jitter. Reported OA 100.0 (80 %), 99.71 (50 %).

Not given for UCM, taken from the AID recipe: the 20-epoch warm-up and the cosine
(to 1e-6). Chosen here as for AID: layer-wise lr decay 0.75, plain cross-entropy, the
augmentation details of _base_/datasets/scene-cls_512px.py. See the AID config.
"""

_base_ = [
    '../_base_/models/pera_vit-base-p16_linear-cls.py',
    '../_base_/datasets/ucm_512px.py',
    '../_base_/schedules/scene-cls_adamw-200e.py',
    '../_base_/default_runtime.py',
]

pera_checkpoint = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(
        img_size={{_base_.img_size}},
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pera_checkpoint),
    ),
    head=dict(num_classes={{_base_.num_classes}}),
)

optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=1e-4))

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
