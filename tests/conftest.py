"""Shared pytest fixtures."""
import importlib.util
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


@pytest.fixture(scope='session')
def load_script():
    """Import a script by its path (``tools/*.py`` are not a package)."""
    def load(path: Path):
        path = Path(path)
        spec = importlib.util.spec_from_file_location(
            f'pera_script_{path.parent.name}_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
