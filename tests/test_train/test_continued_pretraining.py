"""Continued PerA pretraining from converted public weights through tools/train.py.

A timm ``vit_small_patch14_dinov2`` (built offline, ``pretrained=False``, with
random O(1) LayerScale gammas, norms and biases so that the weights are not
timm's init) is saved, converted by ``public_weights_to_pera.py`` and trained
for 3 iterations by the CPU smoke config on real AID tiles. At iteration 0 the
student and teacher backbones are both exactly the converted weights (every
key, none missing); the heads are fresh; the losses are finite and the student
moves.
"""

import math

import pytest
import timm
import torch

from pera_mm.models.selfsup.pera import PerA
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import read_scalars

SMOKE = (
    REPO_ROOT / 'configs/pera/continued/'
    'pera_vit-small-p14_dinov2-init_1xb2-3iter_aid-unlabeled-56px_cpu-smoke.py'
)
CONVERTER = REPO_ROOT / 'tools/model_converters/public_weights_to_pera.py'


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(timm state dict, path of the converted checkpoint, its loaded content)."""
    torch.manual_seed(0)
    model = timm.create_model('vit_small_patch14_dinov2', pretrained=False, img_size=56)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # LayerScale gammas, norm weights, biases
                p.normal_(0, 1)
    root = tmp_path_factory.mktemp('continued')
    src, dst = root / 'vit_s14_dinov2.pth', root / 'vit_s14_dinov2_56px_pera.pth'
    torch.save(model.state_dict(), src)
    return model.state_dict(), src, dst


@pytest.mark.needs_shared
def test_three_iterations_from_converted_dinov2(
    converted, shared_path, tmp_path, load_script, monkeypatch
):
    timm_sd, src, dst = converted
    load_script(CONVERTER).main([str(src), str(dst), '--layout', 'timm', '--img-size', '56'])
    ckpt = torch.load(dst, weights_only=False)
    weights, meta = ckpt['state_dict'], ckpt['meta']['pera_vit']
    assert meta['patch_size'] == 14 and meta['layer_scale_init_value'] == 1e-5
    assert meta['pos_embed_layout'] == 'cls_slot' and meta['pos_resize'] == 'antialias'
    torch.testing.assert_close(weights['blocks.3.ls1.gamma'], timm_sd['blocks.3.ls1.gamma'])

    at_init = {}
    init_weights = PerA.init_weights

    def recording_init(self):
        init_weights(self)
        at_init.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        at_init['_pixel_out'] = self.predictor.last_layer.weight_v.shape[0]

    monkeypatch.setattr(PerA, 'init_weights', recording_init)
    monkeypatch.chdir(tmp_path)
    work = tmp_path / 'w'
    data_root = shared_path('AID_unlabeled')
    load_script(REPO_ROOT / 'tools/train.py').main(
        [
            str(SMOKE),
            '--work-dir',
            str(work),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data_root}',
            f'model.backbone.init_cfg.checkpoint={dst}',
        ]
    )

    # iteration 0: student == teacher == converted, every key (zero missing, none extra)
    for part in ('backbone.', 'teacher.backbone.'):
        keys = {k[len(part) :] for k in at_init if k.startswith(part)}
        assert keys == set(weights), part
        for key, value in weights.items():
            assert torch.equal(at_init[part + key], value), part + key
    assert at_init['_pixel_out'] == 14 * 14 * 3  # fresh pixel head, 588 outputs

    rows = [r for r in read_scalars(work) if 'loss' in r]
    assert [r['iter'] for r in rows] == [1, 2, 3]
    for r in rows:
        assert math.isfinite(r['loss']), r
    final = torch.load(work / 'iter_3.pth', weights_only=False)['state_dict']
    moved = final['backbone.blocks.0.attn.qkv.weight'] - weights['blocks.0.attn.qkv.weight']
    assert moved.abs().max() > 0  # the student trained from the converted weights
