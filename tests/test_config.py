"""key=value overrides: parsing, types, choices and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fastmeta.config import apply_overrides


@dataclass(frozen=True)
class Example:
    steps: int = 1
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"
    seeds: tuple[int, ...] = (1,)
    limit: int | None = None
    flag: bool = False


def test_values_are_parsed_to_their_declared_types():
    out = apply_overrides(Example(), ["steps=3", "lr=1", "mode=b", "seeds=[4,5]", "limit=null",
                                      "flag=true"])  # fmt: skip
    assert out == Example(steps=3, lr=1.0, mode="b", seeds=(4, 5), limit=None, flag=True)
    assert isinstance(out.lr, float)


@pytest.mark.parametrize(
    "override,message",
    [
        ("step=3", "unknown setting 'step'; valid settings: flag, limit, lr, mode, seeds, steps"),
        ("steps=two", "must be of type int"),
        ("steps=true", "must be of type int"),
        ("mode=c", "choose one of a, b"),
        ("steps", "not key=value"),
        ("limit=x", "is not valid"),
    ],
)
def test_bad_overrides_say_what_is_valid(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_overrides(Example(), [override])
