"""PerA + SA with a 'snapshot' HR teacher (DINOv3-style Gram anchoring on a real HR image).

As the SA model, but the HR teacher is a frozen copy of PerA's EMA teacher backbone,
refreshed every 1000 iterations (ours; DINOv3 refreshes its Gram teacher every 10k
iterations of a much longer schedule), instead of its own EMA of the student.
"""

_base_ = ['./pera-sa_vit-small-p16_8xb24-200e_s2-venus-pairs-224px.py']

model = dict(
    spatial_affinity=dict(mode='snapshot', snapshot_source='teacher', refresh_interval=1000)
)
