# Copyright (c) pera-mm contributors. All rights reserved.
"""Detection tests: one torch thread, and the DIOR-layout fixture made from real DOTA samples.

The smoke models are tiny (64-wide ViT, 128 px images): with several intra-op threads on a
busy 2-core machine each small op waits on the others (a 128 px backbone forward measured
1.8 s with 2 threads under load, 0.11 s with one).
"""

import pytest
import torch
from dior_fixture import build_dior_fixture


@pytest.fixture(scope='module', autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='session')
def dior_data(shared_path, tmp_path_factory):
    """(root, manifest) of the DIOR-layout fixture built from ``../shared/data/DOTA``."""
    dota = shared_path('DOTA')
    root = tmp_path_factory.mktemp('dior') / 'DIOR'
    return root, build_dior_fixture(dota, root)
