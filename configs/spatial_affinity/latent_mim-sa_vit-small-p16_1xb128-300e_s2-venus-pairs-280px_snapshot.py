"""LatentMIM + SA with a 'snapshot' HR teacher (DINOv3-style Gram anchoring on a real HR image).

As the SA model, but the HR teacher is a frozen copy of LatentMIM's EMA target encoder,
refreshed every 1000 iterations (ours), instead of its own EMA of the online encoder.
"""

_base_ = ['./latent_mim-sa_vit-small-p16_1xb128-300e_s2-venus-pairs-280px.py']

model = dict(
    spatial_affinity=dict(mode='snapshot', snapshot_source='teacher', refresh_interval=1000)
)
