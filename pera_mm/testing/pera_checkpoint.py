# Copyright (c) pera-mm contributors. All rights reserved.
"""A small PerA training checkpoint, made on the spot for downstream tests.

Downstream tests fine-tune "from a PerA checkpoint": the file must have the
layout the Runner writes during pretraining (``state_dict`` with ``student.*``
and ``teacher.*`` keys, ``meta``), and teacher and student must differ so that
loading the wrong one is caught.
"""

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Tuple, Union

from .config_shrink import build_small_model
from .paths import REPO_ROOT

#: the pretraining config the checkpoint's model is built from (shrunk to TINY_ARCH, 64 px)
PERA_CONFIG = REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'


def make_pera_checkpoint(
    path: Union[str, Path], seed: int = 0, teacher_offset: float = 0.5
) -> Tuple[Path, 'OrderedDict']:
    """Write a PerA training checkpoint of a :data:`TINY_ARCH` ViT/16 at 64 px.

    Args:
        path (str | Path): file to write (``.pth``).
        seed (int): initialisation seed. Defaults to 0.
        teacher_offset (float): added to every floating teacher tensor so that
            teacher and student differ. Defaults to 0.5.

    Returns:
        tuple: (path, the teacher backbone's state dict without its prefix),
        i.e. what a downstream backbone must hold after loading.
    """
    import torch
    from mmengine.logging import MMLogger

    # init_weights logs one INFO entry per tensor; a test only needs the file
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model, _ = build_small_model(PERA_CONFIG, seed=seed)
    finally:
        logger.setLevel(level)
    state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    prefix = 'teacher.backbone.'
    teacher = OrderedDict()
    for key, value in state.items():
        if key.startswith('teacher.') and value.is_floating_point():
            value += teacher_offset
        if key.startswith(prefix):
            teacher[key[len(prefix) :]] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state, 'meta': {'epoch': 1, 'iter': 1}}, path)
    return path, teacher
