"""GramLoss: the formula on hand-built features, zero for identical ones, its options."""

import pytest
import torch
from mmpretrain.registry import MODELS

from pera_mm.models.losses import GramLoss
from pera_mm.utils.errors import PeraConfigError, PeraDataError


def _hand_case():
    # image 0: three 2-D features; after L2 normalisation the student holds e1, e2, (e1+e2)/√2
    s = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]])
    t = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, -5.0]]])  # e1, e1, -e2
    return s, t


def test_equals_the_formula_on_a_hand_built_case():
    s, t = _hand_case()
    r = 2**-0.5
    gs = torch.tensor([[1, 0, r], [0, 1, r], [r, r, 1]])
    gt = torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])
    # squared differences: off-diagonal (0,1) 1, (0,2) r^2 = .5, (1,2) r^2 = .5 -> twice each
    expected = (2 * 1 + 2 * 0.5 + 2 * 0.5) / 9
    assert torch.allclose(((gs - gt) ** 2).mean(), torch.tensor(expected))
    assert GramLoss()(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert GramLoss(loss_weight=0.5)(s, t).item() == pytest.approx(expected / 2, rel=1e-6)


def test_zero_for_identical_features_and_for_rescaled_ones():
    x = torch.randn(3, 7, 16)
    assert GramLoss()(x, x).item() == pytest.approx(0.0, abs=1e-7)
    # L2 normalisation: a positive rescaling of each row changes nothing
    scaled = x * torch.rand(3, 7, 1).add(0.5)
    assert GramLoss()(x, scaled).item() == pytest.approx(0.0, abs=1e-7)
    # the teacher may live in another width: only the affinities are compared
    rot = torch.linalg.qr(torch.randn(16, 16))[0]
    assert GramLoss(reduction='batch')(x, x @ rot).item() == pytest.approx(0.0, abs=1e-6)


def test_clamp_negative_similarities():
    s, t = _hand_case()
    # clamped: the student has no negative entry; the teacher's (2,0)/(2,1) are 0 already
    # (e1 . -e2 = 0), so take a teacher with a real negative: -e1 at position 2
    t2 = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    r = 2**-0.5
    gs = torch.tensor([[1, 0, r], [0, 1, r], [r, r, 1]])
    gt_raw = torch.tensor([[1.0, 0, -1], [0, 1, 0], [-1, 0, 1]])
    raw = ((gs - gt_raw) ** 2).mean().item()
    clamped = ((gs - gt_raw.clamp_min(0)) ** 2).mean().item()
    assert GramLoss()(s, t2).item() == pytest.approx(raw, rel=1e-6)
    assert GramLoss(clamp_negative=True)(s, t2).item() == pytest.approx(clamped, rel=1e-6)
    assert clamped < raw


def test_batch_reduction_includes_cross_image_pairs():
    a = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])  # B = 2, N = 1
    b = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    # per image: 1 x 1 matrices, both 1 -> 0; over the batch: off-diagonal 1 vs 0, twice
    assert GramLoss()(a, b).item() == pytest.approx(0.0, abs=1e-7)
    assert GramLoss(reduction='batch')(a, b).item() == pytest.approx(2 / 4)


def test_teacher_gets_no_gradient_and_bad_input():
    s = torch.randn(2, 5, 8, requires_grad=True)
    t = torch.randn(2, 5, 8, requires_grad=True)
    MODELS.build(dict(type='GramLoss'))(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    with pytest.raises(PeraConfigError, match='reduction must be one of'):
        GramLoss(reduction='sum')
    with pytest.raises(PeraDataError, match='same B and N'):
        GramLoss()(torch.randn(2, 5, 8), torch.randn(2, 4, 8))
