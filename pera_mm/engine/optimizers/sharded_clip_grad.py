"""Gradient-norm clipping when every rank holds a different shard of the grads."""

import torch
import torch.distributed as dist


@torch.no_grad()
def sharded_clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> torch.Tensor:
    """``clip_grad_norm_`` over gradients sharded across ranks (FSDP).

    With FSDP each rank's parameters are views of its own shard, so
    ``torch.nn.utils.clip_grad_norm_`` would clip every shard by a different,
    local norm. Here the local ``sum |g|^p`` (or ``max |g|``) is all-reduced
    first, so all ranks scale by the norm of the whole gradient. Without a
    process group it is ``clip_grad_norm_``.
    """
    parameters = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not (dist.is_available() and dist.is_initialized()):
        return torch.nn.utils.clip_grad_norm_(
            parameters, max_norm, norm_type, error_if_nonfinite=error_if_nonfinite
        )
    norm_type = float(norm_type)
    device = grads[0].device if grads else torch.device('cpu')
    if dist.get_backend() == 'nccl' and device.type != 'cuda':
        device = torch.device('cuda', torch.cuda.current_device())
    if norm_type == float('inf'):
        local = max(
            (g.detach().abs().max().float() for g in grads if g.numel()),
            default=torch.zeros((), device=device),
        ).to(device)
        dist.all_reduce(local, op=dist.ReduceOp.MAX)
        total = local
    else:
        local = torch.zeros((), device=device, dtype=torch.float32)
        for g in grads:
            if g.numel():
                local += g.detach().float().abs().pow(norm_type).sum().to(device)
        dist.all_reduce(local)
        total = local.pow(1.0 / norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(
            f'sharded_clip_grad_norm_: the total gradient norm {float(total)} is not finite'
        )
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device, g.dtype))
    return total
