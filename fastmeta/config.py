"""Typed run configuration: nested dataclasses, YAML in and out, ``key=value`` overrides.

Every setting has a type; loading YAML or applying an override checks it and refuses unknown
keys or invalid values with the list of what is valid, before anything runs. A section may have
one ``dict`` field marked ``field(metadata={"flatten": True})``: keys the section does not
declare are kept there (typed later by whoever knows them, e.g. a dataset's own settings) and
are written flat beside the declared ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import yaml

C = TypeVar("C")


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    minimum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field that carries its one-line description and its range.

    ``minimum`` (at least), ``above`` (greater than) and ``below`` (less than) bound a number,
    or each number of a tuple; ``None`` values pass. Loading and overrides check them with the
    key's full name, so ``sampler.ways=1`` is refused before anything runs.
    """
    metadata = {"help": help, "minimum": minimum, "above": above, "below": below}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def about(help: str) -> dict[str, Any]:
    """The metadata of a field that is not a plain value (a section, a mapping), for
    ``dataclasses.field(default_factory=..., metadata=about("..."))``."""
    return {"help": help}


def describe(cls: Any) -> dict[str, str]:
    """The one-line description of each field of dataclass ``cls`` (empty where none)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def check_range(key: str, value: Any, metadata: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming ``key`` when ``value`` is outside the field's range."""
    values = value if isinstance(value, list | tuple) else [value]
    for item in values:
        if item is None or isinstance(item, bool) or not isinstance(item, int | float):
            continue
        minimum, above, below = (
            metadata.get("minimum"),
            metadata.get("above"),
            metadata.get("below"),
        )
        if minimum is not None and item < minimum:
            raise ValueError(f"{key}={value!r} must be at least {minimum:g}")
        if above is not None and not item > above:
            raise ValueError(f"{key}={value!r} must be greater than {above:g}")
        if below is not None and not item < below:
            raise ValueError(f"{key}={value!r} must be less than {below:g}")


def apply_overrides(config: C, overrides: Sequence[str]) -> C:
    """A copy of ``config`` with each ``key=value`` applied (``section.key=value`` for nesting).

    Values are parsed as YAML scalars or lists (``steps=3``, ``lr=1e-3``, ``seeds=[1,2]``).
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value (e.g. iterations=1000)")
        config = _set_path(config, key.split("."), yaml.safe_load(raw), key)
    return config


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "") -> C:
    """Build dataclass ``cls`` from a (nested) mapping, checking every key and value."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or 'config'} must be a mapping of settings, got {data!r}")
    fields = {f.name for f in _fields(cls)}
    hints = typing.get_type_hints(cls)
    extra = _flattened_field(cls)
    if extra is not None:
        data = _gather_extra(data, fields, extra)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(
            f"unknown setting {where + unknown[0]!r}; valid settings"
            f"{' of ' + where.rstrip('.') if where else ''}: {', '.join(sorted(fields))}"
        )
    values = {}
    metadata = {f.name: f.metadata for f in _fields(cls)}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):  # a hint is a class: a nested section's dataclass
            values[key] = from_dict(cast("type[Any]", hint), value, f"{where}{key}.")
        else:
            values[key] = _coerce(f"{where}{key}", value, hint)
            check_range(f"{where}{key}", values[key], metadata[key])
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of a dataclass config, suitable for YAML and JSON;
    a flattened field's keys sit beside the section's own."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            extra = _flattened_field(type(value))
            out = {f.name: plain(getattr(value, f.name)) for f in _fields(value) if f != extra}
            if extra is not None:
                out.update(plain(getattr(value, extra.name)))
            return out
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    result: dict[str, Any] = plain(config)
    return result


def load_yaml(cls: type[C], text: str, where: str = "") -> C:
    """Parse YAML ``text`` into ``cls``; an empty document gives the defaults."""
    data = yaml.safe_load(text) or {}
    return from_dict(cls, data, where)


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _fields(cls: Any) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def _flattened_field(cls: Any) -> dataclasses.Field[Any] | None:
    """The section's ``dict`` field that holds the keys it does not declare, if it has one."""
    return next((f for f in _fields(cls) if f.metadata.get("flatten")), None)


def _gather_extra(
    data: Mapping[str, Any], fields: set[str], extra: dataclasses.Field[Any]
) -> dict[str, Any]:
    """``data`` with every undeclared key moved into the flattened field ``extra``."""
    nested = data.get(extra.name) or {}
    if not isinstance(nested, Mapping):
        raise ValueError(f"{extra.name!r} must be a mapping of name: value, got {nested!r}")
    gathered = {k: v for k, v in data.items() if k in fields and k != extra.name}
    gathered[extra.name] = {
        **nested,
        **{k: v for k, v in data.items() if k not in fields},
    }
    return gathered


def _set_path(config: Any, path: list[str], value: Any, full_key: str) -> Any:
    fields = {f.name for f in _fields(config)}
    hints = typing.get_type_hints(type(config))
    head, rest = path[0], path[1:]
    extra = _flattened_field(type(config))
    if head not in fields and extra is not None and not rest:
        current = getattr(config, extra.name)
        return dataclasses.replace(config, **{extra.name: {**current, head: value}})
    if head not in fields:
        prefix = full_key[: len(full_key) - len(".".join(path))]
        raise ValueError(
            f"unknown setting {full_key!r}; valid settings"
            f"{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(fields))}"
        )
    current = getattr(config, head)
    if rest and isinstance(current, dict):
        if len(rest) != 1:
            raise ValueError(f"{full_key!r}: {head!r} holds plain values; use {head}.<name>=value")
        return dataclasses.replace(config, **{head: {**current, rest[0]: value}})
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"{full_key!r}: {head!r} is a value, not a section")
        return dataclasses.replace(config, **{head: _set_path(current, rest, value, full_key)})
    if dataclasses.is_dataclass(current):
        new = from_dict(type(current), value, f"{full_key}.")
    else:
        new = _coerce(full_key, value, hints[head])
        field = next(f for f in _fields(config) if f.name == head)
        check_range(full_key, new, field.metadata)
    return dataclasses.replace(config, **{head: new})


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
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}={value!r} must be a mapping of name: value")
        return dict(value)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            value = [value]
        item_type = (typing.get_args(hint) or (Any,))[0]
        return origin(_coerce(key, v, item_type) for v in value)
    if hint is float:
        return _to_float(key, value)
    if hint in (int, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ValueError(f"{key}={value!r} must be of type {hint.__name__}")
    return value


def _to_float(key: str, value: Any) -> float:
    """Floats, ints, and strings like ``1e-3`` (which YAML 1.1 reads as text)."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{key}={value!r} must be a number")
