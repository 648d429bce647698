"""The LatentMIM authors' checkpoint layout loads into our LatentMIM / LatentMIMViT with
a key report: zero missing keys and the recorded weights, bit for bit."""

import pytest
import torch
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401
from pera_mm.utils.errors import PeraDataError, PeraFileNotFoundError
from pera_mm.utils.latent_mim_checkpoint import load_latent_mim_checkpoint

RECORD = 'parity/latentmim_parity_v1.pt'


def record_cfg(c, **backbone):
    vit = dict(
        type='LatentMIMViT',
        embed_dims=c['embed_dim'],
        num_layers=c['depth'],
        num_heads=c['num_heads'],
        patch_size=c['patch_size'],
        projector=dict(mlp_dim=c['proj_mlp_dim'], mlp_depth=c['proj_mlp_depth']),
    )
    vit.update(backbone)
    return vit


@pytest.fixture(scope='module')
def reference_ckpt(shared_path, tmp_path_factory):
    """The record's weights saved as the authors' CheckpointManager does under DDP."""
    d = torch.load(shared_path(RECORD), weights_only=True)
    state = {f'module.{k}': v.clone() for k, v in d['state_before'].items()}
    path = tmp_path_factory.mktemp('lmim_ckpt') / 'checkpoint_0001.pth'
    torch.save(dict(state_dict=state, optimizer={}, epoch=1), path)
    return path, d


@pytest.mark.needs_shared
def test_full_model_loads_with_zero_missing_keys(reference_ckpt):
    path, d = reference_ckpt
    c = d['config']
    model = MODELS.build(
        dict(
            type='LatentMIM',
            backbone=record_cfg(c),
            neck=dict(type='LatentMIMDecoder', embed_dims=96, num_layers=2, num_heads=3),
            loss=dict(type='PatchInfoNCELoss'),
            num_visible=4,
        )
    )
    report = load_latent_mim_checkpoint(model, str(path))
    assert report['missing'] == [] and report['unexpected'] == []
    assert sorted(report['dropped']) == [
        'decoder.pos_embed.pos_embeds',
        'encoder.pos_embed.pos_embeds',
        'target_encoder.pos_embed.pos_embeds',
    ]
    ours = model.state_dict()
    ref = d['state_before']
    assert torch.equal(ours['backbone.patch_embed.weight'], ref['encoder.embed.proj.weight'])
    assert torch.equal(ours['neck.embed.weight'], ref['decoder.embed.weight'])
    assert torch.equal(ours['target.head.norm2.bias'], ref['target_encoder.head.norm2.bias'])
    assert len(ours) == len(ref) - 3


@pytest.mark.needs_shared
def test_encoder_init_cfg_loads_the_target_encoder(reference_ckpt):
    path, d = reference_ckpt
    vit = MODELS.build(
        record_cfg(
            d['config'],
            projector=None,
            init_cfg=dict(type='Pretrained', checkpoint=str(path), part='target'),
        )
    )
    vit.init_weights()
    ref = d['state_before']
    for name, value in vit.state_dict().items():
        theirs = 'target_encoder.' + name.replace('patch_embed.', 'embed.proj.')
        assert torch.equal(value, ref[theirs]), name
    (feat,) = vit(torch.randn(1, 3, 96, 96))
    assert feat.shape == (1, 192)


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    vit = dict(type='LatentMIMViT', embed_dims=32, num_layers=1, num_heads=2, projector=None)
    missing = tmp_path / 'nope.pth'
    with pytest.raises(PeraFileNotFoundError, match='nope.pth'):
        MODELS.build(
            dict(vit, init_cfg=dict(type='Pretrained', checkpoint=str(missing)))
        ).init_weights()
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'foo.weight': torch.zeros(2)}}, other)
    with pytest.raises(PeraDataError, match='not a LatentMIM checkpoint'):
        MODELS.build(
            dict(vit, init_cfg=dict(type='Pretrained', checkpoint=str(other)))
        ).init_weights()
    partial = tmp_path / 'partial.pth'
    torch.save({'state_dict': {'target_encoder.cls_token': torch.zeros(1, 1, 32)}}, partial)
    with pytest.raises(PeraDataError, match='target encoder lacks'):
        MODELS.build(
            dict(vit, init_cfg=dict(type='Pretrained', checkpoint=str(partial)))
        ).init_weights()


@pytest.mark.parametrize('loader', ['latent_mim', 'ijepa'])
def test_a_file_that_is_not_a_checkpoint_is_one_line_naming_it(tmp_path, loader):
    from pera_mm.utils.ijepa_checkpoint import load_ijepa_checkpoint

    load = dict(latent_mim=load_latent_mim_checkpoint, ijepa=load_ijepa_checkpoint)[loader]
    bad = tmp_path / 'released.pth.tar'
    bad.write_bytes(b'this is not a torch file' * 8)
    with pytest.raises(PeraDataError, match='released.pth.tar') as err:
        load(torch.nn.Linear(2, 2), str(bad))
    assert '\n' not in str(err.value)
