# Copyright (c) pera-mm contributors. All rights reserved.
"""Segmentation tests run torch on one thread.

The smoke models are tiny (64-wide ViT, 64 px windows): with several intra-op threads on
a busy 2-core machine, each small op waits on the others (a 64 px forward measured 2 s
with 2 threads under load, 0.04 s with one).
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
