# Copyright (c) pera-mm contributors. All rights reserved.
"""Visit every dict of a nested config (model, pipelines, hooks ...)."""

from typing import Any, Iterator


def iter_config_dicts(node: Any) -> Iterator[dict]:
    """Yield ``node`` and every dict nested in it, depth first, parents before children.

    Args:
        node: a config, dict, list or tuple (anything else yields nothing).

    Yields:
        dict: each dict (or ``ConfigDict``) in the tree.
    """
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from iter_config_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from iter_config_dicts(value)
