# The fixed representation-quality protocol (docs/representation_quality.md),
# run while a pretraining config trains: add this file to its `_base_` list, set
# the evaluation interval in `train_cfg` (`val_interval`, epochs or iterations)
# and keep the best checkpoint with
#   # in the experiment config (MMEngine does not merge a key two `_base_` files set).
#
# Sets: AID_150px (30 classes) and RSSCN7 (7 classes), both split by image number
# inside each class folder: images 1-5 are the bank, 6-10 the queries.
# Metrics per set (percent): cosine kNN top-1 with weights exp(sim / 0.07) for
# k = 20 and k = 1, and a closed-form ridge probe (standardised features,
# one-vs-all targets, lambda = 1.0 per bank sample): `aid/knn_top1_k20`,
# `aid/knn_top1_k1`, `aid/linear_top1`, `rsscn7/...`. Select on AID only:
# RSSCN7 is reported, never used to pick a checkpoint or a setting.
# Features: see pera_mm/evaluation/feature_adaptors.py (PerA: teacher cls).
knn_eval_size = 112  # a multiple of 16 (7x7 patches) and of 14 (8x8)
knn_aid_root = '../shared/data/AID_150px/AID'
knn_rsscn7_root = '../shared/data/RSSCN7'

# RGB loading whatever the model's data preprocessor expects: the loop applies
# only its mean/std (the pretraining statistics), never its channel flip.
knn_eval_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='Resize', scale=(knn_eval_size, knn_eval_size), interpolation='area'),
    dict(type='PackInputs', meta_keys=('img_path', 'split')),
]
val_dataloader = dict(
    batch_size=50,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='BankQueryFolderDataset',
        data_root=knn_aid_root,
        bank=(1, 5),
        query=(6, 10),
        pipeline=knn_eval_pipeline,
    ),
)
val_cfg = dict(
    type='FeatureKNNValLoop',
    sets=dict(aid=dict(data_root=knn_aid_root), rsscn7=dict(data_root=knn_rsscn7_root)),
    feature_adaptor=dict(type='auto'),
)
val_evaluator = dict(type='BankQueryKNNMetric', ks=(20, 1), temperature=0.07, ridge_lambda=1.0)
