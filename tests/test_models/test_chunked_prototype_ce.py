"""The chunked prototype-layer loss equals the plain path (values and gradients)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from pera_mm.models.losses import DINOClsLoss
from pera_mm.models.losses.chunked_prototype_ce import ChunkedPrototypeCrossEntropy
from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch

REPO = REPO_ROOT


def test_chunked_rows_and_gradients_match_plain():
    torch.manual_seed(0)
    M, D, K = 12, 16, 1000  # 1000 is not a multiple of the chunk
    # weight-normalised prototypes (row norm g = 1), as the head produces them
    s_z = F.normalize(torch.randn(M, D), dim=-1).requires_grad_()
    s_w = F.normalize(torch.randn(K, D), dim=-1).requires_grad_()
    t_z, t_w = F.normalize(torch.randn(M, D), dim=-1), F.normalize(torch.randn(K, D), dim=-1)
    center = torch.randn(1, K) * 0.1
    upstream = torch.rand(M)

    # float64 reference
    z64, w64 = s_z.detach().double().requires_grad_(), s_w.detach().double().requires_grad_()
    q = torch.softmax((t_z.double() @ t_w.double().t() - center.double()) / 0.04, -1)
    plain = -(q * torch.log_softmax(z64 @ w64.t() / 0.1, -1)).sum(-1)
    (plain * upstream.double()).sum().backward()
    plain, g_z, g_w = plain.float(), z64.grad.float(), w64.grad.float()

    rows = ChunkedPrototypeCrossEntropy.apply(s_z, s_w, t_z, t_w, center, 0.1, 0.04, 128)
    torch.testing.assert_close(rows, plain, rtol=1e-5, atol=1e-5)
    (rows * upstream).sum().backward()
    torch.testing.assert_close(s_z.grad, g_z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s_w.grad, g_w, rtol=1e-5, atol=1e-5)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match='chunk_size'):
        DINOClsLoss(10, chunk_size=0)


def test_algorithm_with_chunked_loss_equals_plain_path():
    """Whole PerA step: losses, monitor values, gradients and the centre update."""
    plain, pipeline = build_small_model(
        REPO / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
    )
    chunked = copy.deepcopy(plain)
    chunked.cls_loss.chunk_size = 100  # 256 prototypes: chunks of 100, 100, 56
    data = plain.data_preprocessor(synthetic_batch(pipeline, 4, 96), training=True)
    results = []
    for model in (plain, chunked):
        model.cls_loss.teacher_temp = 0.04
        torch.manual_seed(1)
        losses = model(**data, mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        model.cls_loss.update_center()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append((losses, grads, model.cls_loss.center.clone()))
    (l_p, g_p, c_p), (l_c, g_c, c_c) = results
    assert set(l_p) == set(l_c)
    for k in l_p:
        torch.testing.assert_close(l_c[k], l_p[k], rtol=1e-5, atol=1e-5, msg=k)
    assert set(g_p) == set(g_c)
    for k in g_p:
        err = ((g_c[k] - g_p[k]).norm() / g_p[k].norm().clamp_min(1e-12)).item()
        assert err < 1e-5, f'grad {k}: relative error {err:.2e}'
    torch.testing.assert_close(c_c, c_p, rtol=1e-5, atol=1e-7)
