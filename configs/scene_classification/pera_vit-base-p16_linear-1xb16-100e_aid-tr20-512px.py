"""Linear probe of the frozen PerA ViT-B/16 teacher on AID, 20 % train / 80 % test, 512 px.

Section 1.7 of method.md gives fine-tuning hyper-parameters only. The linear-probe
settings are ours:
- the whole ViT frozen (``frozen_stages=12``: patch/position embeddings, cls token,
  every block and the final norm; eval mode, no drop path); only the LinearClsHead on
  the final-normed cls token trains;
- SGD, momentum 0.9, lr 0.01 at batch 16, no weight decay, 100 epochs, cosine to 0
  without warm-up (the DINO / MoCo v3 linear-evaluation form, at the fine-tuning batch;
  a sweep over lr is the usual next step: ``--cfg-options optim_wrapper.optimizer.lr=..``);
- augmentation: random-resized crop (50-100 %) to 512 and horizontal/vertical flips, no
  colour jitter; test images resized to 512;
- plain cross-entropy, the same data, split and normalisation as fine-tuning.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py']

img_size = {{_base_.img_size}}
max_epochs = 100

model = dict(backbone=dict(drop_path_rate=0.0, frozen_stages=12))

optim_wrapper = dict(
    _delete_=True,
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='RandomFlip', prob=0.5, direction='vertical'),
            dict(type='PackInputs'),
        ]
    )
)
