"""``key=value`` command-line overrides applied to a dataclass configuration, with validation."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def apply_overrides(config: C, overrides: Sequence[str]) -> C:
    """A copy of ``config`` with each ``key=value`` applied; values are parsed as YAML scalars.

    Unknown keys and values of the wrong type raise ``ValueError`` listing what is valid.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value (e.g. iterations=1000)")
        if key not in fields:
            raise ValueError(
                f"unknown setting {key!r}; valid settings: {', '.join(sorted(fields))}"
            )
        changes[key] = _coerce(key, yaml.safe_load(raw), hints[key])
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ValueError(f"{key}={value!r} is not valid; choose one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(key, value, option)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(f"{key}={value!r} is not valid ({'; '.join(errors)})")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            value = [value]
        (item_type, *_rest) = typing.get_args(hint) or (Any,)
        return origin(_coerce(key, v, item_type) for v in value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{key}={value!r} must be of type {hint.__name__}")
    if hint is int and isinstance(value, bool):
        raise ValueError(f"{key}={value!r} must be of type int")
    return value
