from __future__ import annotations

from dataclasses import dataclass

import pytest

from fastmeta.algorithms.registry import AlgorithmSpec, algorithm_spec, build_options


@dataclass(frozen=True)
class _Options:
    epsilon: float = 1.0
    batches: int = 4


def _spec(options: type | None) -> AlgorithmSpec:
    return AlgorithmSpec("toy", build=lambda config, model, opts: None, options=options)


def test_builtin_algorithms_are_registered() -> None:
    assert algorithm_spec("maml").model_output == "logits"
    assert algorithm_spec("protonet").model_output == "embedding"


def test_unknown_algorithm_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"choose one of .*maml.*protonet"):
        algorithm_spec("mamal")


def test_options_are_typed_and_checked() -> None:
    assert build_options(_spec(_Options), {"epsilon": "1e-1"}) == _Options(epsilon=0.1)
    with pytest.raises(ValueError, match=r"unknown setting 'algorithm.options.epsilom'"):
        build_options(_spec(_Options), {"epsilom": 1})
    with pytest.raises(ValueError, match="must be of type int"):
        build_options(_spec(_Options), {"batches": "four"})


def test_options_given_to_an_algorithm_without_options_are_refused() -> None:
    assert build_options(_spec(None), {}) is None
    with pytest.raises(ValueError, match=r"takes no algorithm.options"):
        build_options(_spec(None), {"epsilon": 1})
