# Copyright (c) pera-mm contributors. All rights reserved.
"""Hooks whose unset arguments come from a top-level config field."""

from typing import Any, Dict

from mmengine.hooks import Hook

from ...utils.errors import PeraConfigError


class ConfigFieldHook(Hook):
    """Base of hooks configured by a top-level config field (``cfg_field``).

    MMEngine replaces list fields whole when a config inherits, so a child that
    wants another EMA momentum would have to restate every hook. Dict fields
    merge instead: the hook list lives once in ``_base_/schedules`` with no
    arguments, and each hook reads its settings from a dict field such as
    ``teacher_ema = dict(momentum=0.998)``, which a child overrides key by key.

    Precedence, lowest first: the class ``defaults``, the config field (read in
    :meth:`before_run`), arguments given to the hook itself.

    Args:
        **given: hook arguments; None means "not given".
    """

    cfg_field: str = ''
    defaults: Dict[str, Any] = {}

    def __init__(self, **given):
        self._given = {k: v for k, v in given.items() if v is not None}
        self.configure(**dict(self.defaults, **self._given))

    def configure(self, **settings):
        """Validate and store the settings (each subclass defines it)."""
        raise NotImplementedError(f'{type(self).__name__} must define configure()')

    def before_run(self, runner):
        """Merge the config field ``cfg_field`` under the hook's own arguments."""
        from_cfg = dict(runner.cfg.get(self.cfg_field) or {})
        unknown = sorted(set(from_cfg) - set(self.defaults))
        if unknown:
            raise PeraConfigError(
                f'{self.cfg_field}: unknown keys {unknown}; expected some of '
                f'{sorted(self.defaults)}'
            )
        self.configure(**{**self.defaults, **from_cfg, **self._given})
