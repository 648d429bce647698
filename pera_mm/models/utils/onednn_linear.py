# Copyright (c) pera-mm contributors. All rights reserved.
"""The linears' GEMMs on oneDNN when training in fp32 on a CPU.

On CPU, ``F.linear`` with a bias is MKL's ``addmm``: the broadcast bias is first
copied into the output, then the GEMM accumulates into it. oneDNN's linear
(``torch.ops.mkldnn._linear_pointwise``, the kernel inductor emits for CPU
linears) adds the bias in the GEMM's epilogue, and on this project's AMD CPU its
fp32 GEMM is also faster than MKL's at the ViT-S and head shapes
(``docs/benchmarks.md``). Two forms:

- ``'auto'``: the forward and the input gradient ``grad @ W`` (oneDNN linear
  of ``grad`` on a transposed view of ``W``, no copy) on oneDNN; the weight
  gradient ``grad^T @ x`` stays an aten ``mm``, which oneDNN does not beat
  (it would need both operands transposed);
- ``'auto_forward'``: the forward alone on oneDNN (the earlier form of 'auto').

Outside autograd (grad mode off, or no input that needs a gradient: the EMA
teacher) the oneDNN op is called directly, without the autograd function.

The values are fp32 GEMM results either way (they differ in summation order only).
Everywhere else (GPU, other dtypes, CPU autocast, ``torch.compile`` tracing,
a PyTorch without the op) :func:`linear` is ``F.linear``.
"""

import torch
import torch.nn.functional as F

from ...utils.errors import PeraConfigError

#: kernels of the linears: oneDNN forward and input gradient where it applies ('auto'),
#: oneDNN forward only ('auto_forward'), or always aten
LINEAR_KERNELS = ('auto', 'auto_forward', 'aten')


def check_kernel(kernel: str, owner: str = '') -> str:
    """``kernel`` if it is one of :data:`LINEAR_KERNELS`; a one-line config error otherwise."""
    if kernel not in LINEAR_KERNELS:
        prefix = f'{owner}: ' if owner else ''
        raise PeraConfigError(
            f'{prefix}linear_kernel must be one of {LINEAR_KERNELS}, got {kernel!r}'
        )
    return kernel


def _find_op():
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _find_op() if torch.backends.mkldnn.is_available() else None


class _OneDNNLinear(torch.autograd.Function):
    """oneDNN forward; grad_input on oneDNN or aten, grad_weight and grad_bias on aten."""

    @staticmethod
    def forward(ctx, x, weight, bias, onednn_grad_input):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.onednn_grad_input = onednn_grad_input
        return _ONEDNN_LINEAR(x, weight, bias, 'none', [], '')

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if ctx.onednn_grad_input:
                grad_x = _ONEDNN_LINEAR(grad2d, weight.t(), None, 'none', [], '')
            else:
                grad_x = grad2d.mm(weight)
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = grad2d.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(0)
        return grad_x, grad_w, grad_b, None


def cpu_fp32_eager(x: torch.Tensor) -> bool:
    """Whether ``x`` is an fp32 CPU tensor outside CPU autocast and ``torch.compile`` tracing.

    The condition of every CPU-specific kernel choice of the package: elsewhere
    the standard op is kept, so GPU, bf16 and compiled runs are unchanged.
    """
    return (
        x.device.type == 'cpu'
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled('cpu')
        and not torch.compiler.is_compiling()
    )


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` takes the oneDNN kernel for these tensors."""
    return (
        _ONEDNN_LINEAR is not None
        and cpu_fp32_eager(x)
        and weight.dtype == torch.float32
        and x.numel() > 0
    )


def linear(x, weight, bias=None, kernel: str = 'auto'):
    """``F.linear(x, weight, bias)``; on oneDNN where ``kernel`` asks for it and it applies."""
    if kernel != 'aten' and onednn_applies(x, weight):
        if _needs_autograd(x, weight, bias):
            return _OneDNNLinear.apply(x, weight, bias, kernel == 'auto')
        return _ONEDNN_LINEAR(x, weight, bias, 'none', [], '')
    return F.linear(x, weight, bias)


def _needs_autograd(*tensors) -> bool:
    """Whether autograd records an op on ``tensors`` (grad mode on and one needs a gradient)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear_module(module, x, kernel: str = 'auto'):
    """``module(x)``; a plain ``nn.Linear`` through :func:`linear`.

    Any other module (e.g. a LoRA wrapper) is called as itself.
    """
    if type(module) is torch.nn.Linear:
        return linear(x, module.weight, module.bias, kernel)
    return module(x)
