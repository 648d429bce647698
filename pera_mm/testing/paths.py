# Copyright (c) pera-mm contributors. All rights reserved.
"""Where the source checkout and the real sample data are, for tests and benchmarks.

The real remote-sensing samples and the recorded parity steps live next to the
repository, in ``<repo>/../shared/data``, never inside it. Two environment
variables steer how tests treat them:

- ``PERA_MM_SHARED_DATA``: another folder to read instead of ``../shared/data``
  (pointing it at a folder that does not exist hides the data, which is how the
  fail-instead-of-skip switch is checked).
- ``PERA_MM_REQUIRE_SHARED``: ``1`` (CI) turns "sample data missing" from a
  skip into a failure, so a run can never pass without the parity and
  real-data tests; ``0`` or unset (a user's clone) skips them with the reason.
"""

import os
from pathlib import Path

#: Root of the source checkout this package is imported from (``pip install -e .``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Environment variable naming the sample-data folder (default ``<repo>/../shared/data``).
SHARED_DATA_ENV = 'PERA_MM_SHARED_DATA'

#: Environment variable that makes missing sample data a failure instead of a skip.
REQUIRE_SHARED_ENV = 'PERA_MM_REQUIRE_SHARED'

_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('', '0', 'false', 'no', 'off')


def shared_data_root() -> Path:
    """The sample-data folder: ``$PERA_MM_SHARED_DATA``, else ``<repo>/../shared/data``.

    Returns:
        Path: the folder (it may not exist; callers decide what that means).
    """
    override = os.environ.get(SHARED_DATA_ENV, '')
    if override:
        return Path(override).expanduser()
    return REPO_ROOT.parent / 'shared' / 'data'


def shared_data_required() -> bool:
    """Whether missing sample data must fail the tests that need it.

    Returns:
        bool: ``True`` when ``PERA_MM_REQUIRE_SHARED`` is ``1``/``true``/``yes``/``on``,
        ``False`` when it is unset, empty, ``0``/``false``/``no``/``off``.

    Raises:
        ValueError: any other value (a typo must not silently turn the switch off).
    """
    value = os.environ.get(REQUIRE_SHARED_ENV, '').strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f'{REQUIRE_SHARED_ENV}={os.environ[REQUIRE_SHARED_ENV]!r}: expected 1 or 0 '
        '(also true/false, yes/no, on/off)'
    )
