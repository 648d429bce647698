"""OPEN-CD's BITHead (NOT the reference BIT) + PerA ViT-B/16 ViT-Adapter, LEVIR-CD.

Labelled as such: Open-CD's ``BITHead`` differs from justchenhao/BIT_CD (ReLU FFN instead of
GELU, a separate LayerNorm for the decoder memory, its own upsample + conv3x3 ``pre_process``
inside the head, attention scaled by its input width, a 1x1 classifier after the x4 bilinear
upsampling). For the faithful head see
bit_pera-vit-adapter-base-p16_opencd-siam_1xb8-500e_levir-cd-512x512.py. Open-CD's
FeatureFusionNeck concatenates the two dates' stride-4 maps (768 + 768); the head splits them
again, projects each to 32 channels (pre_upsample=1: the map already is at 1/4) and predicts.
"""

_base_ = ['./bit_pera-vit-adapter-base-p16_opencd-siam_1xb8-500e_levir-cd-512x512.py']

model = dict(
    neck=dict(
        _delete_=True,
        type='FeatureFusionNeck',
        policy='concat',
        in_channels=[768, 768, 768, 768],
        out_indices=(0,),
    ),
    decode_head=dict(
        _delete_=True,
        type='BITHead',
        in_channels=768,
        channels=32,
        embed_dims=64,
        enc_depth=1,
        enc_with_pos=True,
        dec_depth=8,
        num_heads=8,
        drop_rate=0.0,
        use_tokenizer=True,
        token_len=4,
        pre_upsample=1,
        upsample_size=4,
        norm_cfg=dict(type='LN'),
        act_cfg=dict(type='ReLU', inplace=True),
        in_index=0,
        num_classes=2,
        loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
)
