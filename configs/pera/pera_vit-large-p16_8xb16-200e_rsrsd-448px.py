"""PerA ViT-L/16 at 448 px: EMA 0.998 -> 1, teacher temperature 0.02 -> 0.03."""

_base_ = ['./pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.3))
train_dataloader = dict(batch_size=16)
teacher_ema = dict(momentum=0.998)
teacher_temp = dict(start_temp=0.02, end_temp=0.03)
