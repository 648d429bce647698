# Copyright (c) pera-mm contributors. All rights reserved.
"""How the command-line tools load configs and report errors."""

import os
import sys

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .errors import (
    PeraConfigError,
    PeraDataError,
    PeraError,
    PeraFileNotFoundError,
    PeraTrainingStopped,
)


class PeraCliErrors:
    """How ``tools/train.py`` and ``tools/test.py`` report errors.

    The project's own errors (:class:`PeraError`) become ONE line on stderr and
    a named exit code; the full traceback is shown with ``--debug`` or
    ``PERA_MM_DEBUG=1``. Any other exception is a library or project bug and
    keeps its traceback (exit code 1). Under torchrun every failing rank prints
    its own line, prefixed with ``[rank R]``.
    """

    #: exit code of each kind of error (1 stays "unexpected error")
    EXIT_CODES = dict(usage=2, config=3, data=4, file_not_found=5, training_stopped=6)

    #: the ``--help`` epilog of the tools
    EPILOG = (
        'exit codes: 0 success; 1 unexpected error (traceback shown); 2 usage error; '
        '3 configuration error; 4 data error; 5 file or folder not found; 6 training '
        'stopped (e.g. too many consecutive non-finite steps). Errors of kinds 3-6 are '
        'one line on stderr; --debug or PERA_MM_DEBUG=1 shows their traceback.'
    )

    _LABELS = dict(
        config='config error',
        data='data error',
        file_not_found='file not found',
        training_stopped='training stopped',
    )
    _WORKER_MARK = 'Original Traceback (most recent call last):'

    @classmethod
    def kind(cls, err: BaseException) -> str:
        """The exit-code name of ``err`` (``''`` when it is not ours).

        A :class:`PeraError` subclass may name its kind in ``exit_kind``.
        """
        if isinstance(err, PeraError) and getattr(err, 'exit_kind', None) in cls.EXIT_CODES:
            return err.exit_kind
        if isinstance(err, PeraTrainingStopped):
            return 'training_stopped'
        if isinstance(err, PeraFileNotFoundError):
            return 'file_not_found'
        if isinstance(err, PeraDataError):
            return 'data'
        if isinstance(err, PeraConfigError):
            return 'config'
        if isinstance(err, PeraError):
            return 'config'
        return ''

    @classmethod
    def exit_code(cls, err: BaseException) -> int:
        """The named exit code of ``err``; 1 for errors that are not ours."""
        kind = cls.kind(err)
        return cls.EXIT_CODES[kind] if kind else 1

    @classmethod
    def message(cls, err: BaseException) -> str:
        """``err``'s message on one line.

        An error re-raised from a DataLoader worker carries "Caught X in
        DataLoader worker process N" and the worker's traceback in its
        message; only the original message (the traceback's last line,
        without the class name) is kept.
        """
        text = str(err)
        if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
            text = err.args[0]  # str(KeyError) adds quotes
        if cls._WORKER_MARK in text:
            last = [line for line in text.splitlines() if line.strip()][-1]
            head, sep, rest = last.partition(': ')
            text = rest if sep and head.split('.')[-1] == type(err).__name__ else last
        return ' '.join(text.split())

    @staticmethod
    def rank_prefix() -> str:
        """``'[rank R] '`` in a multi-process run (torchrun env), else ``''``."""
        if int(os.environ.get('WORLD_SIZE', '1')) > 1:
            return f'[rank {os.environ.get("RANK", "?")}] '
        return ''

    @classmethod
    def line(cls, err: BaseException, tool: str) -> str:
        """The one stderr line for ``err`` raised by ``tool``."""
        label = cls._LABELS.get(cls.kind(err), 'error')
        return f'{cls.rank_prefix()}{tool}: {label}: {cls.message(err)}'

    @classmethod
    def run(cls, main, argv=None, tool: str = 'pera-mm'):
        """Call ``main(argv)``; report our errors as one line and exit with their code.

        ``--debug`` in ``argv`` (or ``sys.argv``) or ``PERA_MM_DEBUG=1`` lets
        every error propagate with its traceback.
        """
        args = sys.argv[1:] if argv is None else argv
        debug = '--debug' in args or os.environ.get('PERA_MM_DEBUG', '') not in ('', '0')
        try:
            return main(argv)
        except PeraError as err:
            if debug:
                raise
            print(cls.line(err, tool), file=sys.stderr, flush=True)
            sys.exit(cls.exit_code(err))


def load_config(path: str, cfg_options=None) -> Config:
    """``Config.fromfile`` + ``--cfg-options``; any error in them is the config's.

    Args:
        path (str): config file.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
    """
    try:
        cfg = Config.fromfile(path)
        if cfg_options is not None:
            cfg.merge_from_dict(cfg_options)
    except Exception as err:
        raise PeraConfigError(
            f'config {path}: {type(err).__name__}: {PeraCliErrors.message(err)}'
        ) from err
    return cfg


def build_and_run(cfg: Config, run):
    """Build the runner and return ``run(runner)``.

    A type name missing from a registry is the config's error.

    Args:
        cfg (Config): the merged config.
        run (callable): what to do with the runner (train or test).
    """
    try:
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        return run(runner)
    except KeyError as err:
        text = PeraCliErrors.message(err)
        if 'is not in the' in text and 'registry' in text:
            raise PeraConfigError(f'{cfg.filename}: {text}') from err
        raise
