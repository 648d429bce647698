"""PerA slim ViT-G/16-1024 (dim 1024, depth 40, 16 heads, ~505 M) with FSDP.

MMEngine's FlexibleRunner shards parameters, gradients and optimizer state of the
student and teacher (each transformer block is its own FSDP unit); blocks use
activation checkpointing and bf16 autocast, and the DINO loss runs through the
prototype layer in chunks of 16384 prototypes (no (rows, K) logits). Launch with
tools/dist_train.sh.
"""
_base_ = ['./pera_vit-large-p16_8xb16-200e_rsrsd-448px.py']

model = dict(backbone=dict(arch='giant-1024', with_cp=True), cls_loss=dict(chunk_size=16384))
train_dataloader = dict(batch_size=8)

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e7)),
        use_orig_params=True))
