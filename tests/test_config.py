"""key=value overrides: parsing, types, choices and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fastmeta.config import apply_overrides
from fastmeta.run_config import RunConfig


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


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 1


@dataclass(frozen=True)
class Outer:
    name: str = "run"
    inner: Inner = Inner()


def test_dotted_overrides_reach_nested_sections_and_yaml_round_trips():
    from fastmeta.config import dump_yaml, load_yaml

    out = apply_overrides(Outer(), ["inner.lr=1e-3", "inner.steps=5", "name=x"])
    assert out == Outer("x", Inner(0.001, 5))
    assert load_yaml(Outer, dump_yaml(out)) == out
    assert load_yaml(Outer, "") == Outer()


@pytest.mark.parametrize(
    "override,message",
    [
        ("inner.rate=1", "unknown setting 'inner.rate'; valid settings of inner: lr, steps"),
        ("name.x=1", "is a value, not a section"),
        ("inner.lr=fast", "must be a number"),
        ("inner={steps: 2, lr: 0.5, momentum: 0.9}", "unknown setting 'inner.momentum'"),
    ],
)
def test_nested_errors_name_the_section_and_valid_keys(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Outer(), [override])


def test_yaml_with_unknown_key_is_refused():
    from fastmeta.config import load_yaml

    with pytest.raises(ValueError, match=r"unknown setting 'inner\.stepz'"):
        load_yaml(Outer, "inner:\n  stepz: 3\n")


def test_algorithm_options_override_sets_one_key_and_keeps_the_others() -> None:
    config = apply_overrides(RunConfig(), ["algorithm.options={a: 1}", "algorithm.options.b=2.5"])
    assert config.algorithm.options == {"a": 1, "b": 2.5}


def test_algorithm_options_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        apply_overrides(RunConfig(), ["algorithm.options=3"])
