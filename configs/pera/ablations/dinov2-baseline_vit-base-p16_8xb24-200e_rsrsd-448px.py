"""DINOv2-style baseline in the PerA framework (the performance and ablation baseline).

Independent crops per view, full views for the teacher, iBOT block masks on the
student's global crops (mask tokens at the input), DINO loss between every student
crop and the teacher's other global crops, iBOT patch loss at masked patches,
KoLeo on the backbone cls token; no pixel prediction.
"""
_base_ = ['../pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

model = dict(
    backbone=dict(mask_token_layer=0),
    predictor=None,
    pixel_loss=None,
    cls_loss=dict(pairing='cross'),
    patch_loss=dict(type='DINOClsLoss', out_channels=65536, student_temp=0.1,
                    center_momentum=0.9, loss_weight=1.0),
    koleo_on='backbone',
    teacher_local_crops=False)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBImageFromFile'),
    dict(type='PerAMultiCropViews', global_crop_size=448, local_crop_size=96,
         num_global_crops=2, num_local_crops=8, spatial_alignment=False,
         teacher_color=dict(jitter_prob=0.72, gray_prob=0.08)),
    dict(type='DisjointMaskGenerator', patch_size=16, mode='block'),
    dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks'], meta_keys=['img_path']),
]))
