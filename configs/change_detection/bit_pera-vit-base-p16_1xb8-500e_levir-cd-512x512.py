"""BIT + PerA ViT-B/16, LEVIR-CD (official layout, 1024 tiles; 512 crops; slide test).

Recipe of method.md 1.7: shared-weight encoder (two passes) + BIT head, CE, AdamW, batch 8,
drop path 0.2, lr up to 1e-4 then cosine to 1e-6, 500 epochs, flips + random resized crop to
512, no colour jitter; the teacher encoder of the PerA checkpoint. Test protocol: the whole
1024 x 1024 test tiles, predicted by sliding 512 windows with stride 512 (4 disjoint windows,
each pixel predicted once); ``--cfg-options model.test_cfg.stride="(256,256)"`` overlaps them,
and ``*_test-precut.py`` evaluates pre-cut crops instead. The paper reports F1 (changed) 92.34;
no number has been measured with this config in this repository.
"""

_base_ = [
    '../_base_/models/bit_pera-vit-base-p16.py',
    '../_base_/datasets/levir-cd_512x512.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/cd_adamw-500e.py',
]

# the PerA pretraining checkpoint (its teacher backbone is loaded; a file written by
# tools/model_converters/extract_backbone.py or the released layout also works)
pretrained = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
