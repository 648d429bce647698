"""CPU smoke variant of bit_pera-vit-base-p16_1xb8-500e_dsifn-cd-256x256.py.

The LEVIR-CD smoke config on DSIFN-CD's flat layout (every pair in A/ for training,
list/demo.txt for validation and test); testing predicts each 256 px crop whole.
"""

_base_ = ['./bit_pera-vit-tiny-p16_1xb2-3iter_levir-cd-64x64_cpu-smoke.py']

data_root = 'data/DSIFN-CD'
model = dict(test_cfg=dict(_delete_=True, mode='whole'))
train_dataloader = dict(dataset=dict(type='DSIFNCDChangeDataset', data_root=data_root))
val_dataloader = dict(dataset=dict(type='DSIFNCDChangeDataset', data_root=data_root))
test_dataloader = val_dataloader
