"""Shared pytest fixtures."""
from pathlib import Path

import pytest

# Real sample data lives next to the repository, never inside it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """``<repo>/../shared/data`` (real remote-sensing samples); skips the
    test when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real sample data not found at {SHARED_DATA} '
                    '(expected ../shared/data next to the repository)')
    return SHARED_DATA
