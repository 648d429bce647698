"""Shared helpers of the public-weights tests: random timm models, feature comparison."""

import timm
import torch
from mmengine.registry import DefaultScope

from pera_mm.models.backbones import PerAViT
from pera_mm.utils.public_weights import convert_public_weights
from pera_mm.utils.public_weights_manifests import official_manifest

TOL = dict(atol=1e-5, rtol=1e-5)


def random_timm_model(name, img_size, seed=0, **kwargs):
    """``name`` built offline (meta device, then filled): matrices N(0, 0.02), every
    1-D tensor (norm weights and biases, LayerScale gammas, biases) and the
    tokens / position table N(0, 1), so that every block changes the features."""
    torch.manual_seed(seed)
    model = timm.create_model(
        name, pretrained=False, img_size=img_size, dynamic_img_size=True, device='meta', **kwargs
    )
    model = model.to_empty(device='cpu').eval()
    for module in model.modules():
        if hasattr(module, 'init_non_persistent_buffers'):
            module.init_non_persistent_buffers()
    with torch.no_grad():
        for name_, p in model.named_parameters():
            matrix = p.dim() >= 2 and 'token' not in name_ and 'pos_embed' not in name_
            p.normal_(0, 0.02) if matrix else p.normal_(0, 1)
    return model


def converted_pera_vit(state_dict, layout='timm', **overrides):
    """The converted PerAViT (eval) and the conversion report."""
    weights, report = convert_public_weights(state_dict, layout, cfg_overrides=overrides)
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
        vit = PerAViT(**report['cfg'])
    vit = vit.to_empty(device='cpu').eval()
    vit.load_state_dict(weights, assign=True)
    return vit, report


def assert_same_features(timm_model, vit, size, batch=1, seed=1):
    """cls, register and patch tokens of timm's ``forward_features`` == PerAViT's."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size[0], size[1], generator=g)
    with torch.no_grad():
        ref = timm_model.forward_features(x)
        cls, registers, patches = vit.forward_features(x)
    n_prefix = timm_model.num_prefix_tokens
    assert registers.shape[1] == n_prefix - 1
    assert patches.shape[1] == (size[0] // vit.patch_size) * (size[1] // vit.patch_size)
    torch.testing.assert_close(cls, ref[:, 0], **TOL)
    torch.testing.assert_close(registers, ref[:, 1:n_prefix], **TOL)
    torch.testing.assert_close(patches, ref[:, n_prefix:], **TOL)
    return ref


def checkpoint_from_manifest(name, real=False):
    """Tensors with the manifest's keys and shapes (meta tensors unless ``real``);
    DINOv3's ``rope_embed.periods`` holds the true base-100 periods."""
    out = {}
    for key, shape in official_manifest(name).items():
        if key == 'rope_embed.periods':
            d = 4 * shape[0]
            out[key] = 100.0 ** (2 * torch.arange(shape[0], dtype=torch.float32) / (d // 2))
        else:
            out[key] = torch.randn(shape) if real else torch.empty(shape, device='meta')
    return out
