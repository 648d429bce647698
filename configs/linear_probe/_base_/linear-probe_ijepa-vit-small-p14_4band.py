# The linear probe of linear-probe_latent-mim-vit-small-p16_4band.py on the I-JEPA ViT-S/14
# (the paper's other host): its EMA target encoder (`target_encoder.*` of an IJEPA
# checkpoint), every patch, no cls token. Patch 14: GEO-Bench's 256 px are padded to 266,
# MADOS's 240 px to 252 (bottom/right, label 255), the predictions cropped back.
_base_ = ['./linear-probe_latent-mim-vit-small-p16_4band.py']
patch_size = 14

data_preprocessor = dict(size_divisor=patch_size, test_cfg=dict(size_divisor=patch_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.IJEPAViT',
        arch='small',
        img_size=224,  # the pretraining grid; positions are recomputed for every input grid
        patch_size=patch_size,
        in_channels={{_base_.num_bands}},
        out_type='featmap',
        init_cfg=dict(type='Pretrained', prefix='target_encoder.'),
    ),
    decode_head=dict(in_channels=384, patch_size=patch_size),
)
