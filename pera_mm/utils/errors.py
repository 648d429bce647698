# Copyright (c) pera-mm contributors. All rights reserved.
"""The project's own exception classes.

They subclass the builtin a caller would expect (``ValueError``,
``FileNotFoundError``, ``RuntimeError``) so existing ``except`` clauses keep
working, and share :class:`PeraError` so ``tools/train.py`` and
``tools/test.py`` can tell our configuration and data errors from library bugs
and report them as one line.
"""


class PeraError(Exception):
    """Base of every error pera-mm raises on purpose."""


class PeraConfigError(PeraError, ValueError):
    """A config field has a value the module cannot use."""


class PeraDataError(PeraError, ValueError):
    """Input data (an image, a mask, a checkpoint's contents) is not as expected."""


class PeraFileNotFoundError(PeraError, FileNotFoundError):
    """A file or folder the config names does not exist."""


class PeraTrainingStopped(PeraError, RuntimeError):
    """Training cannot go on (e.g. too many consecutive non-finite steps)."""


class PeraConfigTypeError(PeraConfigError, TypeError):
    """A config field has a value of the wrong type (also a ``TypeError``)."""
