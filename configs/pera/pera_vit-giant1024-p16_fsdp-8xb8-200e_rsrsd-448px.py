"""PerA slim ViT-G/16-1024 (dim 1024, depth 40, 16 heads, ~505 M) with FSDP.

MMEngine's FlexibleRunner shards parameters, gradients and optimizer state of the
student and teacher. ``pera_fsdp_wrap_policy`` makes every block, every backbone
and every head its own FSDP unit, so student and teacher shards line up and the
EMA update runs shard by shard. Gradients are clipped by their global norm
(``use_fsdp=True``), blocks use activation checkpointing and bf16 autocast, and
the DINO head has the paper's K = 131072 prototypes, with the loss run through
the prototype layer in chunks of 16384 (no (rows, K) logits). Checkpoints are full state dicts (rank 0), loadable without
FSDP. Memory model for a 40 GB A100: ``python benchmarks/memory_model.py``.
Launch with tools/dist_train.sh.
"""

_base_ = ['./pera_vit-large-p16_8xb16-200e_rsrsd-448px.py']

model = dict(
    backbone=dict(arch='giant-1024', with_cp=True),
    projector=dict(out_channels=131072),
    cls_loss=dict(chunk_size=16384),
)
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(use_fsdp=True)

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(auto_wrap_policy=dict(type='pera_fsdp_wrap_policy'), use_orig_params=True),
)
