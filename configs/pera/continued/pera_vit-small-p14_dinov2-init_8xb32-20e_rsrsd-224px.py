"""Continued PerA pretraining of DINOv2 ViT-S/14 on RSRSD-style tiles, 224 px.

Initialisation: student AND teacher backbones from converted public weights
(`tools/model_converters/public_weights_to_pera.py ... --layout timm` for
timm's `vit_small_patch14_dinov2`, or `--layout dinov2` for the official
`dinov2_vits14_pretrain.pth`, both with `--img-size 224`); PerA copies the
loaded student into the teacher. The DINO head, the pixel head (14²·3 = 588
outputs per patch) and the mask token start fresh.

Recipe for continuing a converged model rather than training from scratch:
- lr 2e-4 (a fifth of the from-scratch 1e-3) with a 2-epoch warm-up from 0
  (instead of 20): the fresh heads must settle before large updates reach the
  pretrained blocks; 20 epochs;
- drop path 0.1 (DINOv2's ViT-S value), teacher EMA from 0.994;
- crops that are multiples of 14: 224 px globals (16x16 grid), 98 px locals
  (7x7 grid);
- DINOv2's ImageNet normalisation (its training statistics);
- optional freezing of the patch embedding / first k blocks: set their lr to 0,
  e.g. `--cfg-options optim_wrapper.paramwise_cfg.custom_keys.backbone.patch_embed.lr_mult=0.0`
  (and `...backbone.blocks.0.lr_mult=0.0` per block; give `decay_mult=0.0`
  too). PerAViT has no `frozen_stages` in pretraining; a zero lr keeps the
  student's weights, so the EMA teacher keeps them as well.

The position resize follows the source: timm's `antialias`; for the official
hub checkpoint use `pos_resize='offset'` (DINOv2's 0.1 offset, the converter's
`meta['pera_vit']` states it).
"""

_base_ = ['../pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

dinov2_patch = 14
patch_size = dinov2_patch  # this tree's patch size (the mask grid and the backbone)
img_size = 224
max_epochs = 20
warmup_epochs = 2
pretrained = 'checkpoints/vit_s14_dinov2_pera.pth'

model = dict(
    backbone=dict(
        arch='small',
        patch_size=patch_size,
        img_size=img_size,
        layer_scale_init_value=1e-5,
        pos_resize='antialias',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    projector=dict(hidden_channels=2048, bottleneck_channels=256),
    predictor=dict(hidden_channels=2048, bottleneck_channels=256),
)

train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='PerAMultiCropViews',
                global_crop_size=img_size,
                local_crop_size=98,
                num_global_crops=2,
                num_local_crops=8,
                global_crop_scale=(0.4, 1.0),
                local_crop_scale=(0.05, 0.4),
                spatial_alignment=True,
            ),
            dict(type='DisjointMaskGenerator', patch_size=patch_size, mask_ratios=(0.2, 0.2, 0.6)),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ]
    ),
)

optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=warmup_epochs,
        start_factor=0.0,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
    dict(
        type='WarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.2,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(max_epochs=max_epochs)
teacher_ema = dict(momentum=0.994)
teacher_temp = dict(warmup_epochs=warmup_epochs)
