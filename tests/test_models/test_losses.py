import math

import torch

from pera_mm.models.losses import DINOClsLoss, KoLeoLoss, PixelMSELoss


def test_dino_same_crop_pairing_equals_hand_computation():
    torch.manual_seed(0)
    C, B, K = 3, 4, 7
    s, t = torch.randn(C, B, K), torch.randn(C, B, K)
    loss_fn = DINOClsLoss(K, student_temp=0.1, teacher_temp=0.04, center_momentum=0.9)
    loss_fn.center.copy_(torch.randn(1, K))
    q = loss_fn.teacher_targets(t)
    expect = 0.0
    for c in range(C):
        for b in range(B):
            tq = [math.exp((t[c, b, k] - loss_fn.center[0, k]) / 0.04) for k in range(K)]
            zs = sum(math.exp(s[c, b, k] / 0.1) for k in range(K))
            expect -= sum(tq[k] / sum(tq) * (s[c, b, k] / 0.1 - math.log(zs)) for k in range(K))
    expect /= C * B
    assert torch.allclose(q.sum(-1), torch.ones(C, B))
    assert abs(loss_fn(s, q).item() - expect) < 1e-4
    assert abs(loss_fn.per_row(s, q).mean().item() - expect) < 1e-4


def test_dino_cross_pairing_skips_same_index():
    torch.manual_seed(1)
    s, q = torch.randn(4, 2, 5), torch.softmax(torch.randn(2, 2, 5), -1)
    loss = DINOClsLoss(5).forward_cross(s, q)
    logp = torch.log_softmax(s / 0.1, -1)
    terms = [-(q[j] * logp[i]).sum(-1).mean() for i in range(4) for j in range(2) if i != j]
    assert torch.allclose(loss, torch.stack(terms).mean())


def test_center_is_ema_of_all_teacher_outputs_since_last_update():
    loss_fn = DINOClsLoss(3, center_momentum=0.9)
    a, b = torch.randn(4, 3), torch.randn(2, 2, 3)
    loss_fn.teacher_targets(a)
    loss_fn.teacher_targets(b)
    loss_fn.update_center()
    mean = torch.cat([a, b.reshape(-1, 3)]).mean(0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, 0.1 * mean)
    loss_fn.update_center()  # nothing pending: unchanged
    torch.testing.assert_close(loss_fn.center, 0.1 * mean)


def test_koleo_equals_brute_force_nearest_neighbour():
    torch.manual_seed(2)
    x = torch.randn(9, 6)
    n = [v / v.norm() for v in x]
    expect = 0.0
    for i in range(9):
        d = min((n[i] - n[j]).norm().item() for j in range(9) if j != i)
        expect += -math.log(d + 1e-8)
    expect /= 9
    assert abs(KoLeoLoss(loss_weight=1.0)(x).item() - expect) < 1e-5
    assert abs(KoLeoLoss(loss_weight=0.1)(x).item() - 0.1 * expect) < 1e-6


def test_koleo_runs_in_fp32_under_bf16_autocast():
    x = torch.randn(8, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = KoLeoLoss(1.0)(x.bfloat16())
    assert out.dtype == torch.float32
    assert abs(out.item() - KoLeoLoss(1.0)(x.bfloat16().float()).item()) < 1e-6


def test_pixel_loss_reductions():
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4) * 2
    assert PixelMSELoss(1.0, 'patch_sum')(pred, target).item() == 16.0
    assert PixelMSELoss(0.5, 'mean')(pred, target).item() == 2.0
