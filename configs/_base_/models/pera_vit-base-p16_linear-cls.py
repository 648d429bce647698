# PerA ViT-B/16 as an MMPretrain ImageClassifier backbone: the cls token of the last
# block (after the final LayerNorm) -> LinearClsHead, cross-entropy. The ViT weights
# come from a PerA checkpoint's TEACHER (set `init_cfg` in the experiment config).
# `img_size` is the fine-tuning size: the checkpoint's 28x28 position grid (448 px
# pretraining) is resized once, bicubically, to this grid when it is loaded.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PerAViT',
        arch='base',
        img_size=512,
        patch_size=16,
        drop_path_rate=0.1,
        drop_path_mode='row',  # per-sample stochastic depth for fine-tuning
        out_type='cls_token',
        final_norm=True,
        frozen_stages=-1,
    ),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=30,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,),
    ),
)
