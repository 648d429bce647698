import torch


def _teacher_chunk(t_z, t_w, center, t_temp, lo, hi):
    """Centred, tempered teacher logits of prototypes [lo, hi)."""
    return (t_z @ t_w[lo:hi].t() - center[:, lo:hi]) / t_temp


def _running_lse(lse, chunk):
    """Log-sum-exp over prototypes, accumulated chunk by chunk."""
    c = torch.logsumexp(chunk, dim=1)
    return c if lse is None else torch.logaddexp(lse, c)


@torch.no_grad()
def teacher_log_normalizer(t_z, t_w, center, t_temp, chunk):
    """Per-row teacher log-normaliser log Σ_k exp((t_k - c_k) / T_t), without (M, K) logits."""
    lse = None
    for lo in range(0, t_w.shape[0], chunk):
        lse = _running_lse(lse, _teacher_chunk(t_z, t_w, center, t_temp, lo, lo + chunk))
    return lse


class ChunkedPrototypeCrossEntropy(torch.autograd.Function):
    """Per-row DINO cross-entropy through the prototype layer, chunked over prototypes.

    ``loss_m = logsumexp_k(s_mk / T_s) - Σ_k q_mk s_mk / T_s`` with student logits
    ``s = s_z @ s_w.T`` and teacher targets ``q = softmax((t_z @ t_w.T - c) / T_t)``.
    Forward and backward walk the K prototypes in chunks, so only (M, chunk)
    blocks exist at any time: with 131k prototypes the (M, K) logits, their
    softmax and their gradient are never materialised. The backward recomputes
    each block: ``d loss_m / d s_mk = (softmax_s - q)_mk / T_s``.
    """

    @staticmethod
    def forward(ctx, s_z, s_w, t_z, t_w, center, s_temp, t_temp, chunk):
        t_lse = teacher_log_normalizer(t_z, t_w, center, t_temp, chunk)
        s_lse, cross = None, torch.zeros_like(t_lse)
        for lo in range(0, s_w.shape[0], chunk):
            logits = s_z @ s_w[lo : lo + chunk].t() / s_temp
            q = torch.exp(_teacher_chunk(t_z, t_w, center, t_temp, lo, lo + chunk) - t_lse[:, None])
            cross += (q * logits).sum(1)
            s_lse = _running_lse(s_lse, logits)
        ctx.save_for_backward(s_z, s_w, t_z, t_w, center, t_lse, s_lse)
        ctx.s_temp, ctx.t_temp, ctx.chunk = s_temp, t_temp, chunk
        return s_lse - cross

    @staticmethod
    def backward(ctx, grad):
        s_z, s_w, t_z, t_w, center, t_lse, s_lse = ctx.saved_tensors
        T, chunk = ctx.s_temp, ctx.chunk
        grad_z = torch.zeros_like(s_z) if ctx.needs_input_grad[0] else None
        grad_w = torch.empty_like(s_w) if ctx.needs_input_grad[1] else None
        for lo in range(0, s_w.shape[0], chunk):
            w = s_w[lo : lo + chunk]
            p = torch.exp(s_z @ w.t() / T - s_lse[:, None])
            q = torch.exp(
                _teacher_chunk(t_z, t_w, center, ctx.t_temp, lo, lo + chunk) - t_lse[:, None]
            )
            g = (p - q) * (grad[:, None] / T)
            if grad_z is not None:
                grad_z += g @ w
            if grad_w is not None:
                grad_w[lo : lo + chunk] = g.t() @ s_z
        return grad_z, grad_w, None, None, None, None, None, None


@torch.no_grad()
def chunked_target_stats(t_z, t_w, center, t_temp, chunk):
    """Per-row entropy of the teacher targets and the entropy of their batch mean."""
    t_lse = teacher_log_normalizer(t_z, t_w, center, t_temp, chunk)
    expected_logit = torch.zeros_like(t_lse)
    mean_q = []
    for lo in range(0, t_w.shape[0], chunk):
        logits = _teacher_chunk(t_z, t_w, center, t_temp, lo, lo + chunk)
        q = torch.exp(logits - t_lse[:, None])
        expected_logit += (q * logits).sum(1)
        mean_q.append(q.mean(0))
    mean_q = torch.cat(mean_q)
    batch_entropy = -(mean_q * torch.log(mean_q.clamp_min(1e-12))).sum()
    return (t_lse - expected_logit).mean(), batch_entropy
