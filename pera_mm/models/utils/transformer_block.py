# Copyright (c) pera-mm contributors. All rights reserved.
"""The pre-norm transformer block of ``PerAViT`` and its parts."""

import torch
import torch.nn as nn

from ...structures.patch_ops import gather_tokens
from ...utils.errors import PeraConfigError
from .attention import Attention
from .onednn_linear import linear_module
from .swiglu import SwiGLUMlp

#: feed-forward networks of a block
MLP_TYPES = ('mlp', 'swiglu')


class Mlp(nn.Module):
    """Two-layer feed-forward network of a transformer block (GELU, no dropout).

    Args:
        dim (int): token width.
        hidden_dim (int): hidden width.
        linear_kernel (str): kernel of both linears, one of
            :data:`~pera_mm.models.utils.onednn_linear.LINEAR_KERNELS`.
            Defaults to 'aten'.
    """

    def __init__(self, dim: int, hidden_dim: int, linear_kernel: str = 'aten'):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.linear_kernel = linear_kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc2(GELU(fc1(x)))."""
        h = self.act(linear_module(self.fc1, x, self.linear_kernel))
        return linear_module(self.fc2, h, self.linear_kernel)


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch (CaiT / DINOv2).

    Args:
        dim (int): token width.
        init_value (float): initial scale of every channel.
    """

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels of ``x``."""
        return x * self.gamma


def drop_path_rows(x, drop_prob, training):
    """Classic stochastic depth: zero the branch for random samples, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


#: how the 'subset' stochastic depth picks its rows: ``index_select`` (backward: one
#: ``index_add``) or advanced indexing ``x[rows]`` (backward: an accumulating ``index_put_``)
SUBSET_ROWS = ('index_select', 'advanced')


class Block(nn.Module):
    """Pre-norm transformer block with two stochastic-depth forms.

    ``drop_path_mode='row'`` computes the branch for every sample and zeroes a
    random subset. ``'subset'`` (the form of the released PerA code) computes the
    branch only for a random ``int(B * (1 - p))`` rows and adds it back scaled by
    ``B / subset``, so dropped rows cost nothing.

    ``forward(x, queries=idx)`` computes the block for the tokens ``idx`` only
    (they attend to every token): a last block whose other outputs nobody reads.
    ``forward_groups`` runs several sequences of different lengths at once.

    Args:
        dim (int): token width.
        num_heads (int): attention heads.
        mlp_dim (int): hidden width of the MLP.
        qkv_bias (bool | str): True, False or 'qv' (see :class:`Attention`).
            Defaults to True.
        drop_path (float): stochastic-depth rate of both branches. Defaults to 0.
        drop_path_mode (str): 'subset' or 'row'. Defaults to 'subset'.
        layer_scale_init_value (float): > 0 enables LayerScale. Defaults to 0.
        norm_eps (float): eps of both LayerNorms. Defaults to 1e-6.
        mlp_type (str): 'mlp' (GELU) or 'swiglu' (:class:`SwiGLUMlp`, whose
            hidden width is ``mlp_dim``). Defaults to 'mlp'.
        subset_rows (str): one of :data:`SUBSET_ROWS`; equal values, the first
            with a cheaper backward. Defaults to 'index_select'.
        linear_kernel (str): kernel of the attention and MLP linears, 'aten',
            'auto' or 'auto_forward' (oneDNN for fp32 on CPU, see
            :mod:`~pera_mm.models.utils.onednn_linear`). Defaults to 'aten'
            (``PerAViT`` passes 'auto', where its gain was measured; the other
            hosts keep 'aten' and their parity records bit for bit).
        attention_kernel (str): 'sdpa' or 'auto' (see :class:`Attention`).
            Defaults to 'sdpa' for the same reason.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        qkv_bias=True,
        drop_path: float = 0.0,
        drop_path_mode: str = 'subset',
        layer_scale_init_value: float = 0.0,
        norm_eps: float = 1e-6,
        mlp_type: str = 'mlp',
        subset_rows: str = 'index_select',
        linear_kernel: str = 'aten',
        attention_kernel: str = 'sdpa',
    ):
        super().__init__()
        if drop_path_mode not in ('row', 'subset'):
            raise PeraConfigError(
                f"drop_path_mode must be 'row' or 'subset', got {drop_path_mode!r}"
            )
        if mlp_type not in MLP_TYPES:
            raise PeraConfigError(f'mlp_type must be one of {MLP_TYPES}, got {mlp_type!r}')
        if subset_rows not in SUBSET_ROWS:
            raise PeraConfigError(f'subset_rows must be one of {SUBSET_ROWS}, got {subset_rows!r}')
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(
            dim,
            num_heads,
            qkv_bias=qkv_bias,
            linear_kernel=linear_kernel,
            attention_kernel=attention_kernel,
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = (
            Mlp(dim, mlp_dim, linear_kernel=linear_kernel)
            if mlp_type == 'mlp'
            else SwiGLUMlp(dim, mlp_dim)
        )
        if layer_scale_init_value > 0:
            self.ls1 = LayerScale(dim, layer_scale_init_value)
            self.ls2 = LayerScale(dim, layer_scale_init_value)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = drop_path
        self.drop_path_mode = drop_path_mode
        self.subset_rows = subset_rows

    def _attn_branch(self, x, rope=None, queries=None):
        return self.ls1(self.attn(self.norm1(x), rope=rope, queries=queries))

    def _mlp_branch(self, x):
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, rope=None, queries=None) -> torch.Tensor:
        """Attention and MLP residual branches with stochastic depth.

        ``rope``: optional per-token ``(sin, cos)`` of the attention (see
        :class:`Attention`). ``queries``: optional (B, K) token indices; the
        output is then theirs only, (B, K, C). A list ``x`` of sequences (with
        lists ``rope`` / ``queries``) runs :meth:`forward_groups`: through the
        module call, so that a wrapper such as FSDP sees it.
        """
        if isinstance(x, (list, tuple)):
            return self.forward_groups(x, rope, queries)
        p = self.drop_path if self.training else 0.0
        if self._drops_subsets(x, p):
            x = self._subset_residual(x, self._attn_branch, p, rope=rope, queries=queries)
            return self._subset_residual(x, self._mlp_branch, p)
        x = self._residual(x, queries, None, self._attn_branch(x, rope, queries), p)
        return self._residual(x, None, None, self._mlp_branch(x), p)

    def forward_groups(self, xs, ropes=None, queries=None):
        """:meth:`forward` of several sequences ``xs`` (B_i, N_i, C) at once.

        The norms, linears and MLP run once on the tokens of all of them, attention
        within each; the stochastic depth draws its rows sequence by sequence, as
        separate calls would. ``ropes`` / ``queries``: None or one entry per
        sequence (``queries`` all None or all given). Returns the list of outputs.
        """
        ropes = list(ropes) if ropes is not None else [None] * len(xs)
        queries = list(queries) if queries is not None else [None] * len(xs)
        xs = self._grouped_residual(xs, self._attn_groups, ropes, queries)
        return self._grouped_residual(xs, self._mlp_groups, [None] * len(xs), [None] * len(xs))

    def _attn_groups(self, xs, ropes, queries):
        flat = torch.cat([x.flatten(0, 1) for x in xs])
        sizes = [x.shape[:2] for x in xs]
        out = self.ls1(self.attn.forward_groups(self.norm1(flat), sizes, ropes, queries))
        kept = [x.shape[1] if q is None else q.shape[1] for x, q in zip(xs, queries)]
        return [o.view(x.shape[0], k, -1) for o, x, k in zip(_split_rows(out, xs, kept), xs, kept)]

    def _mlp_groups(self, xs, ropes, queries):
        out = self._mlp_branch(torch.cat([x.flatten(0, 1) for x in xs]))
        kept = [x.shape[1] for x in xs]
        return [o.view(x.shape) for o, x in zip(_split_rows(out, xs, kept), xs)]

    def _grouped_residual(self, xs, branch, ropes, queries):
        """Each ``x`` (or its ``queries``) plus its part of ``branch`` over all of ``xs``."""
        p = self.drop_path if self.training else 0.0
        rows, inputs, in_ropes, in_queries = [], [], [], []
        for x, rope, q in zip(xs, ropes, queries):
            r = self._subset_rows(x, p)
            rows.append(r)
            if r is not None:
                x, rope, q = self._select(x, r, rope, q)
            inputs.append(x)
            in_ropes.append(rope)
            in_queries.append(q)
        outs = branch(inputs, in_ropes, in_queries)
        return [self._residual(x, q, r, y, p) for x, q, r, y in zip(xs, queries, rows, outs)]

    def _residual(self, x, queries, rows, y, p):
        """``x`` (or its ``queries``) plus the branch output ``y``.

        ``y`` holds the ``rows`` of a 'subset' draw (added back rescaled), or every
        row (None: the per-row drop path at rate ``p`` applies).
        """
        base = x if queries is None else gather_tokens(x, queries)
        if rows is None:
            return base + drop_path_rows(y, p, self.training)
        return torch.index_add(base, 0, rows, y.to(x.dtype), alpha=x.shape[0] / len(rows))

    def _subset_rows(self, x, p):
        """The random rows the 'subset' stochastic depth computes (None: every row)."""
        if not self._drops_subsets(x, p):
            return None
        b = x.shape[0]
        return torch.randperm(b, device=x.device)[: max(int(b * (1 - p)), 1)]

    def _drops_subsets(self, x, p):
        """Whether stochastic depth at rate ``p`` computes a row subset of ``x`` ('subset')."""
        return p > 0 and self.drop_path_mode == 'subset' and x.shape[0] > 1

    def _select(self, x, rows, rope=None, queries=None):
        """``x``, its per-sample rotations and its ``queries`` at ``rows``."""
        b = x.shape[0]
        if rope is not None:  # per-sample rotations follow their rows
            rope = tuple(self._take_rows(t, rows) if t.shape[0] == b else t for t in rope)
        if queries is not None:
            queries = self._take_rows(queries, rows)
        return self._take_rows(x, rows), rope, queries

    def _take_rows(self, t, rows):
        return t.index_select(0, rows) if self.subset_rows == 'index_select' else t[rows]

    def _subset_residual(self, x, branch, p, rope=None, queries=None):
        """``x`` (or its ``queries``) plus ``branch`` of a random row subset, rescaled."""
        rows = self._subset_rows(x, p)
        xr, rope, queries_r = self._select(x, rows, rope, queries)
        kwargs = {}
        if rope is not None:
            kwargs['rope'] = rope
        if queries is not None:
            kwargs['queries'] = queries_r
        return self._residual(x, queries, rows, branch(xr, **kwargs), p)


def _split_rows(flat, xs, kept):
    """Split packed rows (sum B_i K_i, C) back into the sequences of ``xs``, K_i tokens each."""
    return flat.split([x.shape[0] * k for x, k in zip(xs, kept)])
