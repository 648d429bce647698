"""I-JEPA ViT-S/14 on RGB, the paper's settings, sharded with FSDP.

MMEngine's FlexibleRunner shards parameters, gradients and optimizer state of the
context encoder, the predictor and the EMA target encoder. ``ijepa_fsdp_wrap_policy``
makes every block, both encoders and the predictor their own FSDP units, so encoder
and target shards line up and the EMA after each step runs shard by shard. Checkpoints
are full state dicts (rank 0), loadable without FSDP. Launch with tools/dist_train.sh.
"""

_base_ = ['./ijepa_vit-small-p14_8xb8-300e_rgb-224px.py']

optim_wrapper = dict(use_fsdp=True)

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(auto_wrap_policy=dict(type='ijepa_fsdp_wrap_policy'), use_orig_params=True),
)
