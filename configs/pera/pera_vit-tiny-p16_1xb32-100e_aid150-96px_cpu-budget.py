"""PerA ViT-Tiny/16 under a ~15-minute, 2-core CPU budget on real AID tiles.

Tuned for: the 300 AID tiles in ../shared/data/AID_150px (150 px, 30 classes),
96/48 px crops (2 global + 4 local pairs), 100 epochs = 1000 iterations of 32,
with the goal that the teacher does NOT collapse. The released recipe shrunk to
such a budget collapses (mean pairwise cosine of teacher cls features
0.31 -> 0.66, kNN probe below random init). What keeps this one healthy (from the
tiny model base and the demo config): 4096 prototypes instead of 65536 for a batch of
32, a teacher temperature of 0.04 -> 0.05 over 30 epochs (0.07 leaves the
targets near uniform at this batch size), lr 5e-4 with a 5-epoch warm-up from 0,
drop path 0.1, and the EMA cosine spread over all iterations.

Measured here (2026-11-23, 2 CPU cores, 16 min with another job on the
machine): no collapse warning; per-batch teacher cosine stayed 0.17-0.49 and
effective rank 7-12. The kNN probe (tools/analysis_tools/knn_probe.py,
leave-one-out over the 300 tiles, teacher cls at 96 px) gave 39.3% for the
trained teacher vs 34.7% at random init for k=5 (k=1: 39.3 vs 32.3; k=10:
39.0 vs 32.3; chance 3.3%), with the mean pairwise cosine 0.40 (random init
0.31).
"""

_base_ = ['./pera_vit-tiny-p16_1xb32-20e_demo-96px.py']

data_root = '../shared/data/AID_150px/AID'

train_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
# the 30-epoch temperature warm-up the kNN figures above were measured with
teacher_temp = dict(warmup_epochs=30)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=25, max_keep_ckpts=1))
