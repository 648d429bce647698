# Copyright (c) pera-mm contributors. All rights reserved.
"""How the parity tests compare our tensors with a recorded reference step."""

import torch


def relative_error(actual: torch.Tensor, expected: torch.Tensor, eps: float = 1e-12) -> float:
    """``||actual - expected|| / max(||expected||, eps)`` (L2 over all elements, in float64).

    Args:
        actual (torch.Tensor): our value.
        expected (torch.Tensor): the recorded value.
        eps (float): floor of the denominator (an all-zero record).

    Returns:
        float: the relative L2 error.
    """
    diff = (actual.double() - expected.double()).norm()
    return (diff / expected.double().norm().clamp_min(eps)).item()


def assert_relative_close(actual, expected, what: str, tol: float = 1e-5, eps: float = 1e-12):
    """Assert equal shapes and :func:`relative_error` below ``tol``; the message names ``what``.

    Args:
        actual (torch.Tensor): our value.
        expected (torch.Tensor): the recorded value.
        what (str): what is compared, for the failure message.
        tol (float): largest relative error accepted (1e-5, the parity records' bar).
        eps (float): floor of the denominator, as in :func:`relative_error`.
    """
    assert actual.shape == expected.shape, f'{what}: shape {actual.shape} != {expected.shape}'
    err = relative_error(actual, expected, eps)
    assert err < tol, f'{what}: relative error {err:.2e} >= {tol}'


def key_bias_mask(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """False on the key-bias elements of an attention bias, True elsewhere.

    A key bias shifts every logit of a query by the same amount, so its gradient
    is 0 mathematically; what it holds is rounding noise, which AdamW turns into
    lr-sized updates that no other summation order reproduces. ``*attn.qkv.bias``
    has the k part in its middle third, ``*cross_attn.kv_proj.bias`` in its first half.
    """
    keep = torch.ones_like(tensor, dtype=torch.bool)
    if name.endswith('attn.qkv.bias'):
        d = tensor.numel() // 3
        keep[d : 2 * d] = False
    if name.endswith('cross_attn.kv_proj.bias'):
        keep[: tensor.numel() // 2] = False
    return keep
