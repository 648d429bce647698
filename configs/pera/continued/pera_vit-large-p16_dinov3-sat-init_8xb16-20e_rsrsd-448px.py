"""Continued PerA pretraining of DINOv3's satellite ViT-L/16 (SAT-493M) at 448 px.

Initialisation: student AND teacher backbones from
`python tools/model_converters/public_weights_to_pera.py
dinov3_vitl16_pretrain_sat493m-eadcf0ff.pth checkpoints/dinov3_vitl16_sat_pera.pth
--layout dinov3` (the web ViT-L `dinov3_vitl16_pretrain_lvd1689m` and timm's
`vit_large_patch16_dinov3` have the same layout); PerA copies the loaded
student into the teacher. The DINO head, the pixel head (16²·3 = 768 outputs
per patch) and the mask token start fresh; `local_cls_norm` is dropped by the
converter.

The backbone is DINOv3's: 4 storage (register) tokens, q/v biases without a k
bias, LayerScale, LayerNorm eps 1e-5, no learned position table and RoPE
(base 100, coordinates rescaled by up to 2x in training, the released models'
setting).

Recipe for continuing a converged model:
- lr 1e-4 (a tenth of the from-scratch 1e-3; ViT-L moves further per step)
  with a 2-epoch warm-up from 0 (instead of 20); 20 epochs; drop path 0.2;
- the satellite weights' normalisation: mean (0.430, 0.411, 0.296), std
  (0.213, 0.156, 0.143) of 0-1 RGB, i.e. the 0-255 values below (the web
  ViT-L uses ImageNet's; then drop the `data_preprocessor` override);
- optional freezing of the patch embedding / first k blocks: set their lr to 0,
  e.g. `--cfg-options optim_wrapper.paramwise_cfg.custom_keys.backbone.patch_embed.lr_mult=0.0`
  (and `...backbone.blocks.0.lr_mult=0.0` per block; give `decay_mult=0.0` too).
  PerAViT has no `frozen_stages` in pretraining; a zero lr keeps the student's
  weights, so the EMA teacher keeps them as well.
"""

_base_ = ['../pera_vit-large-p16_8xb16-200e_rsrsd-448px.py']

max_epochs = 20
warmup_epochs = 2
pretrained = 'checkpoints/dinov3_vitl16_sat_pera.pth'

model = dict(
    data_preprocessor=dict(
        mean=[0.430 * 255, 0.411 * 255, 0.296 * 255],
        std=[0.213 * 255, 0.156 * 255, 0.143 * 255],
    ),
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096
        ),
        qkv_bias='qv',
        layer_scale_init_value=1e-5,
        num_register_tokens=4,
        norm_eps=1e-5,
        pos_embed_layout='none',
        rope=dict(base=100.0, rescale_coords=2),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
)

optim_wrapper = dict(optimizer=dict(lr=1e-4))
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
teacher_temp = dict(warmup_epochs=warmup_epochs)
