"""CPU smoke variant of upernet_pera-vit-adapter-base-p16_4xb2-200e_vaihingen-512x512.py.

The Potsdam smoke config (same TINY model, 64 px training, 128 px slide testing, 4 iterations)
on Vaihingen data: the two full configs differ only in the dataset type and root. Make a
checkpoint and run::

    python -c "from pera_mm.testing import make_pera_checkpoint as m; m('work_dirs/pera_tiny_64px.pth')"
    python tools/train.py configs/segmentation/upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_vaihingen-64x64_cpu-smoke.py \
        --cfg-options train_dataloader.dataset.data_root=DATA val_dataloader.dataset.data_root=DATA
"""

_base_ = ['./upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py']

dataset_type = 'ISPRSDataset'
data_root = 'data/vaihingen'

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
