import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def capture_random_state():
    """Return the Python, NumPy and torch (CPU + CUDA) generator states.

    The states are plain ints, floats and tensors, so a checkpoint holding them
    stays loadable with ``torch.load(weights_only=True)``.

    Returns:
        dict: ``python``, ``numpy`` and ``torch`` states, plus ``cuda`` when a GPU
        is available.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=dict(
            kind=kind,
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            gauss=float(gauss),
        ),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state):
    """Set the generators back to a state returned by :func:`capture_random_state`.

    Args:
        state (dict): the captured states. A ``cuda`` entry is applied only when
            a GPU is available.
    """
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    np.random.set_state(
        (n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss'])
    )
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random generators' states with each checkpoint and restore them on resume.

    MMEngine reseeds a resumed run from the start-of-run seed, so augmentations
    drawn in the main process and batch-subset drop path would differ from an
    uninterrupted run. With this hook a killed-and-resumed run continues with the
    exact random stream it would have had. Loading weights with ``load_from``
    (fine-tuning) leaves the generators alone: the state is restored only when
    training starts at the checkpoint's own iteration.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None

    def before_save_checkpoint(self, runner, checkpoint):
        """Store the current generator states and iteration in the checkpoint."""
        checkpoint['random_state'] = dict(iter=runner.iter, **capture_random_state())

    def after_load_checkpoint(self, runner, checkpoint):
        """Keep the loaded states until training starts (see :meth:`before_train`)."""
        self._pending = checkpoint.get('random_state')

    def before_train(self, runner):
        """Restore the states when training resumes at the checkpoint's iteration."""
        state, self._pending = self._pending, None
        if state is not None and state['iter'] == runner.iter > 0:
            restore_random_state(state)
            runner.logger.info(f'restored random generator states of iteration {runner.iter}')
