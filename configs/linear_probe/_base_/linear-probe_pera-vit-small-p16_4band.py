# The linear probe of linear-probe_latent-mim-vit-small-p16_4band.py on a PerA ViT-S/16: the
# TEACHER backbone of a PerA checkpoint (method.md 1.5), every patch, the last block's
# normed patch features.
_base_ = ['./linear-probe_latent-mim-vit-small-p16_4band.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.PerAViT',
        arch='small',
        img_size=224,  # the pretraining grid; the position embedding is resized per input
        patch_size={{_base_.patch_size}},
        in_channels={{_base_.num_bands}},
        out_type='featmap',
        out_indices=(-1,),
        final_norm=True,
        init_cfg=dict(type='Pretrained', part='teacher'),
    ),
)
