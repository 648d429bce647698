"""I-JEPA ViT-S/14 pretrained on the HR images of the pairs: the paper's "HR" model.

The host alone on the high-resolution side of the pairs (the ``hr/`` folder of the pair
set), random resized 224 px crops as in the 4-band recipe; it is evaluated on MR images
like the other two models. Hyper-parameters as the MR model (method.md §2).
"""

_base_ = ['../ijepa/ijepa_vit-small-p14_8xb8-300e_s2-4band-224px.py']
data_root = 'data/s2_venus_pairs'

train_dataloader = dict(dataset=dict(data_root=data_root, data_prefix=dict(img_path='hr')))
