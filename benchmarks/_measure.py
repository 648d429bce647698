# Copyright (c) pera-mm contributors. All rights reserved.
"""What one training step costs: FLOPs, tokens per block, live-tensor peak, GEMM peak.

Used inside the benchmark worker process (imports torch at module level).
"""

import time
import weakref

import torch
from torch.utils import flop_counter as fc
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# a multiply-add is two floating-point operations
FLOPS_PER_MAC = 2
# fwd + bwd of a block that gets gradients cost about 3x its forward (the
# backward computes the input and the weight gradients); a teacher block only runs forward
TRAIN_TO_FORWARD_COST = 3


def sdpa_cpu_flop_mapping():
    """FlopCounterMode formulas for the CPU SDPA kernels.

    torch's registry covers the CUDA flash / efficient / cuDNN attention ops but
    not ``_scaled_dot_product_flash_attention_for_cpu`` and its backward, which
    ``F.scaled_dot_product_attention`` dispatches to on CPU; without this mapping
    attention would count zero FLOPs.
    """
    aten = torch.ops.aten
    mapping = {}
    fwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    bwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward', None)
    if fwd is not None and fwd not in fc.flop_registry:

        def sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
            return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

        mapping[fwd] = sdpa_cpu
    if bwd is not None and bwd not in fc.flop_registry:

        def sdpa_cpu_bwd(
            grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
        ):
            return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

        mapping[bwd] = sdpa_cpu_bwd
    return mapping


def count_flops(step):
    """Run ``step()`` under ``FlopCounterMode``; returns (total FLOPs, FLOPs per aten op)."""
    with fc.FlopCounterMode(display=False, custom_mapping=sdpa_cpu_flop_mapping()) as counter:
        step()
    by_op = {
        str(op).split('.')[-1]: int(n) for op, n in counter.get_flop_counts()['Global'].items()
    }
    return counter.get_total_flops(), by_op


class TokenCounter:
    """Counts the tokens entering every transformer block during one step.

    Blocks under ``teacher.`` (PerA, the baseline), ``target_encoder.`` (I-JEPA)
    or ``target.`` (LatentMIM) are teacher blocks (forward only); all others
    (student, MAE encoder and decoder, I-JEPA predictor, LatentMIM decoder, whose
    cross-attention blocks count their query tokens) get gradients.

    Args:
        model (nn.Module): the model whose blocks are hooked until :meth:`remove`.
    """

    BLOCK_TYPES = ('Block', 'TransformerEncoderLayer', 'CrossDecoderBlock')
    TEACHER_PREFIXES = ('teacher.', 'target_encoder.', 'target.')

    def __init__(self, model):
        self.handles, self.counts = [], dict(student=0, teacher=0)
        self.depth = dict(student=0, teacher=0)
        for name, mod in model.named_modules():
            if type(mod).__name__ in self.BLOCK_TYPES:
                role = 'teacher' if name.startswith(self.TEACHER_PREFIXES) else 'student'
                self.depth[role] += 1
                self.handles.append(mod.register_forward_pre_hook(self._hook(role)))

    def _hook(self, role):
        def hook(mod, args):
            # a packed block call (``PerAViT(pack_crops=True)``) carries a list of sequences
            seqs = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
            self.counts[role] += sum(int(x.shape[0]) * int(x.shape[1]) for x in seqs)

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()

    def per_image(self, batch):
        """Token-blocks per image of each role and the train-cost-weighted sum."""
        out = dict(
            student_token_blocks_per_img=self.counts['student'] / batch,
            teacher_token_blocks_per_img=self.counts['teacher'] / batch,
            student_blocks=self.depth['student'],
            teacher_blocks=self.depth['teacher'],
        )
        out['weighted_token_blocks_per_img'] = (
            TRAIN_TO_FORWARD_COST * out['student_token_blocks_per_img']
            + out['teacher_token_blocks_per_img']
        )
        return out


def storage_bytes(tensors):
    """Bytes of the distinct storages behind ``tensors``."""
    seen, total = set(), 0
    for t in tensors:
        st = t.untyped_storage()
        if st.data_ptr() not in seen:
            seen.add(st.data_ptr())
            total += st.nbytes()
    return total


def static_tensors(model, optimizer, data):
    """Tensors alive between steps: params, buffers, grads, optimizer state, the batch."""
    ts = list(model.parameters()) + list(model.buffers())
    ts += [p.grad for p in model.parameters() if p.grad is not None]
    for state in optimizer.state.values():
        ts += [v for v in state.values() if torch.is_tensor(v)]
    ts += [t for t in tree_flatten(data['inputs'])[0] if torch.is_tensor(t)]
    return ts


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of the tensor storages created while active.

    The CPU analogue of ``torch.cuda.max_memory_allocated`` minus what existed
    before: every op output whose storage is neither in ``static`` nor already
    tracked counts until the storage is freed (a weakref finaliser on the
    storage object, which PyTorch keeps alive as long as the storage).

    Args:
        static (Iterable[Tensor]): tensors that exist before and after the step.
    """

    def __init__(self, static=()):
        super().__init__()
        self.static = {t.untyped_storage()._cdata for t in static}
        self.live, self.cur, self.peak = {}, 0, 0

    def _free(self, key):
        self.cur -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != 'meta':
                st = t.untyped_storage()
                key = st._cdata
                if key in self.static or key in self.live:
                    continue
                self.live[key] = st.nbytes()
                self.cur += self.live[key]
                self.peak = max(self.peak, self.cur)
                weakref.finalize(st, self._free, key)
        return out


def gemm_probe(device, dtype, n, seconds):
    """Sustained ``torch.mm`` FLOP/s on n x n matrices (same threads as the step).

    Args:
        device (torch.device): where to run.
        dtype (torch.dtype): matrix dtype (that of the step's GEMMs).
        n (int): matrix side.
        seconds (float): how long to keep multiplying.

    Returns:
        dict: ``n``, ``dtype``, ``iters``, ``seconds`` and ``gflops``.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for _ in range(2):  # first calls pick kernels and allocate workspaces
        torch.mm(a, b)
    sync()
    iters, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        iters += 1
        if iters % 2 == 0:
            sync()
            if time.perf_counter() - t0 >= seconds:
                break
    elapsed = time.perf_counter() - t0
    return dict(
        n=n,
        dtype=str(dtype).replace('torch.', ''),
        iters=iters,
        seconds=round(elapsed, 3),
        gflops=FLOPS_PER_MAC * n**3 * iters / elapsed / 1e9,
    )
