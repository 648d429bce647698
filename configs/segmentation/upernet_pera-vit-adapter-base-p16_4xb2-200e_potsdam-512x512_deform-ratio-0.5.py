"""As upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py with the deformable
attention's value projection at half width (deform_ratio 0.5), as in the ViT-Adapter
reference ViT-B/L configs. The default (1.0) is the authors' released PerA downstream code.
"""

_base_ = ['./upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py']

model = dict(backbone=dict(deform_ratio=0.5))
