"""Package attributes imported on first use, so that importing a package stays cheap.

``fastmeta``, ``fastmeta.algorithms`` and ``fastmeta.datasets`` name their public objects up
front but import the modules that define them (and torch) only when one is used; the
command line's help, presets and configuration checks therefore start without torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``where[name]`` (a
    module path) on first use and keeps it in the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value
        return value

    return __getattr__
