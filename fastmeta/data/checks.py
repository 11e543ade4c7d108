"""Argument checks shared by the samplers and task transforms, with messages naming the fix."""

from __future__ import annotations

from collections.abc import Sequence


def check_positive(**values: int) -> None:
    """Raise a ValueError naming each argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def describe_class(index: int, class_names: Sequence[str] | None) -> str:
    """``class 'name' (index i)`` or ``class i`` for error messages."""
    if class_names is None:
        return f"class {index}"
    return f"class {class_names[index]!r} (index {index})"
