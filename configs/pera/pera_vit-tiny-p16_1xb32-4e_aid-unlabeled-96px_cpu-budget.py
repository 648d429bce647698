"""PerA ViT-Tiny/16 on the 2,100 unlabeled AID tiles: 4 epochs, a short CPU budget.

Data: ../shared/data/AID_unlabeled/images (2,100 AID tiles, 150 px, images
41-110 of each class under anonymous names, no labels). They are disjoint
from the 300 labelled tiles of ../shared/data/AID_150px (images 1-10 of each
class), which is what benchmarks/pretrained_vs_random.py evaluates on, so the
downstream comparison never sees a pretraining image.

Recipe: the cpu-budget config (4096 prototypes, teacher temperature
0.04 -> 0.05, lr 5e-4, drop path 0.1, EMA cosine over all iterations) with
the schedules rescaled to 4 epochs of 66 iterations (264 iterations of 32,
about a quarter of the cpu-budget run's 1000): lr warm-up 1 epoch (66
iterations, the cpu-budget run had 50) and the teacher-temperature warm-up
over the first epoch. A checkpoint every epoch.

Measured: see docs/pretraining_helps.md.
"""

_base_ = ['./pera_vit-tiny-p16_1xb32-100e_aid150-96px_cpu-budget.py']

max_epochs = 4
warmup_epochs = 1
data_root = '../shared/data/AID_unlabeled'

train_dataloader = dict(dataset=dict(data_root=data_root))
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
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
teacher_temp = dict(warmup_epochs=1)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=4))
