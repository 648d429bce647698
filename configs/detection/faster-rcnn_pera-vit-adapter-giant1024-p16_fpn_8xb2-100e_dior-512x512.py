"""Faster R-CNN + FPN on the PerA slim ViT-G/16-1024 ViT-Adapter, DIOR (20 classes; trained on trainval,
tested on test; images resized 800 -> 512).

Recipe of method.md 1.7: anchors 4..512 px, aspect ratios 0.2..5.0, RPN NMS 0.8, test score
threshold 0.01 and 200 detections per image, AdamW lr 1e-4 cosine, weight decay 1e-3, 100
epochs, total batch 16 (8 GPUs x 2), drop path 0.3, flips + colour jitter; teacher encoder of
the PerA checkpoint. The paper reports mAP50 75.71 (compare with 'voc_area/mAP'; tools/test.py
also reports the COCO-style 'coco/AP' and 'coco/AP50'). No number has been measured with this
config in this repository.
"""

_base_ = [
    '../_base_/models/faster-rcnn_pera-vit-adapter-giant1024-p16_fpn.py',
    '../_base_/datasets/dior_512x512.py',
    '../_base_/default_runtime_det.py',
    '../_base_/schedules/det_adamw-100e.py',
]

# the PerA pretraining checkpoint (its teacher backbone is loaded; a file written by
# tools/model_converters/extract_backbone.py or the released layout also works)
pretrained = 'work_dirs/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px/epoch_200.pth'

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
