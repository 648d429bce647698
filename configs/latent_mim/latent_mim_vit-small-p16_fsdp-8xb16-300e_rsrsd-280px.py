"""LatentMIM ViT-S/16, the paper's settings (batch 128 = 8 x 16), sharded with FSDP.

MMEngine's FlexibleRunner shards parameters, gradients and optimizer state of the
online encoder, the decoder and the EMA target encoder. ``latent_mim_fsdp_wrap_policy``
makes every block, both encoders, every decoder block and the decoder their own FSDP
units, so the EMA inside the forward runs on aligned local shards before the encoders
gather them. Checkpoints are full state dicts (rank 0), loadable without FSDP. Launch
with tools/dist_train.sh on 8 processes.
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py']

train_dataloader = dict(batch_size=16)
optim_wrapper = dict(use_fsdp=True)

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='latent_mim_fsdp_wrap_policy'), use_orig_params=True
    ),
)
