# UPerNet + FCN auxiliary head on the PerA slim ViT-G/16-1024 ViT-Adapter (1024
# channels, 40 blocks, 16 deformable heads, ~505 M ViT parameters). Activation
# checkpointing of the blocks and interactions; DDP (parameters + AdamW states of
# about 8 GB fit one GPU; the FSDP pretraining config is not needed here).
_base_ = ['./upernet_pera-vit-adapter-base-p16.py']

model = dict(
    backbone=dict(
        arch='giant-1024',
        deform_num_heads=16,
        interaction_indexes=[[0, 9], [10, 19], [20, 29], [30, 39]],
        with_cp=True,
    ),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024]),
    auxiliary_head=dict(in_channels=1024),
)
