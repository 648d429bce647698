"""Let MMEngine checkpoints load under ``torch.load(weights_only=True)``.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``. MMEngine
0.10.7 calls ``torch.load`` without that argument, so ``runner.resume()`` and
``load_checkpoint`` fail on its own checkpoints with ``Unsupported global``:
the message hub stores ``HistoryBuffer`` objects (numpy arrays inside, plus
their statistics methods pickled as ``getattr(HistoryBuffer, 'mean')``),
numpy scalars (``eta``, ``best_score``) and ``ConfigDict`` values (dataset
meta built from a config).

:func:`setup_torch_load_compat` allow-lists exactly those types with
``torch.serialization.add_safe_globals``. The weights-only unpickler stays on:
any other class in a checkpoint is still rejected. ``getattr`` is NOT
allow-listed as the builtin; a restricted stand-in is registered under its
pickle name that only resolves HistoryBuffer's statistics methods.
"""

import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch

_SafeGlobal = Union[Callable, Tuple[Callable, str]]

# HistoryBuffer registers these statistics methods by default.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

# Numeric numpy dtypes whose scalars / arrays MMEngine logs (metrics such as
# ``np.float32`` best scores, ``np.float64`` eta, int64 counts).
_NUMPY_DTYPES = (
    'bool',
    'int8',
    'int16',
    'int32',
    'int64',
    'uint8',
    'uint16',
    'uint32',
    'uint64',
    'float16',
    'float32',
    'float64',
)

_installed = False


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` inside weights-only unpickling.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods as
    ``getattr(HistoryBuffer, '<name>')``. Only that lookup is allowed here, so
    allow-listing it does not expose attribute access on arbitrary objects.
    """
    from mmengine.logging import HistoryBuffer

    allowed = set(_HISTORY_BUFFER_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a weights-only load; '
        'only HistoryBuffer statistics methods are'
    )


def _numpy_multiarray_func(name: str) -> Callable:
    # numpy >= 2 moved ``numpy.core`` to ``numpy._core``.
    core = getattr(np, '_core', None)
    if core is None or not hasattr(core, 'multiarray'):
        core = np.core
    return getattr(core.multiarray, name)


def mmengine_safe_globals() -> List[_SafeGlobal]:
    """The allow-list: MMEngine's own types plus the numpy/builtin pieces
    MMEngine checkpoints contain.

    Entries are objects or ``(object, pickled_name)`` pairs, as accepted by
    ``torch.serialization.add_safe_globals``. numpy functions are registered
    under both their numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)
    pickle names, so checkpoints written with either numpy load.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer

    safe: List[_SafeGlobal] = [
        HistoryBuffer,
        ConfigDict,
        (history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    for func_name in ('_reconstruct', 'scalar'):
        func = _numpy_multiarray_func(func_name)
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            safe.append((func, f'{module}.{func_name}'))
    # ``np.dtype(...)`` is rebuilt by REDUCE and then BUILD on the instance,
    # which needs the concrete dtype class (e.g. numpy.dtypes.Float64DType).
    for dtype_name in _NUMPY_DTYPES:
        safe.append(type(np.dtype(dtype_name)))
    return safe


def setup_torch_load_compat() -> bool:
    """Allow-list MMEngine checkpoint types for weights-only ``torch.load``.

    Idempotent. A no-op (returns False) on torch without
    ``torch.serialization.add_safe_globals`` (< 2.4), where ``torch.load``
    does not default to weights-only anyway.

    Returns:
        bool: Whether the allow-list is installed.
    """
    global _installed
    if _installed:
        return True
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_safe_globals())
    _installed = True
    return True
