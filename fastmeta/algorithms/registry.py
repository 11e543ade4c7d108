"""The algorithms a run can name: ``algorithm.name`` in a config picks one of these.

Each algorithm module registers an :class:`AlgorithmSpec` when it is imported; the registry
imports every module of :mod:`fastmeta.algorithms` on first lookup, so adding an algorithm is
adding one module, with no list to edit elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

if TYPE_CHECKING:
    from fastmeta.algorithms.base import MetaLearner
    from fastmeta.run_config import RunConfig


@dataclass(frozen=True)
class AlgorithmSpec:
    """How the trainer builds one algorithm.

    Attributes:
        name: the value of ``algorithm.name``.
        build: ``build(config, model, options) -> MetaLearner``; ``model`` is the network of
            ``config.model`` with the output ``model_output`` asks for.
        options: dataclass of the algorithm's own settings, filled from ``algorithm.options``
            (unknown keys and wrong types are refused); ``None`` if it has none.
        model_output: ``"logits"`` (one output per way), ``"embedding"`` (a feature vector) or
            ``"feature_map"`` (a spatial map ``[N, C, H, W]``, as Relation Networks need).
        description: one line for ``fastmeta algorithms`` and the README.
        exports: its :meth:`~fastmeta.algorithms.MetaLearner.task_classifier` works, so a
            trained run can be exported as a fixed classifier.
    """

    name: str
    build: Callable[[RunConfig, nn.Module, Any], MetaLearner]
    options: type | None = None
    model_output: Literal["logits", "embedding", "feature_map"] = "logits"
    description: str = ""
    exports: bool = False


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add ``spec``; a second algorithm with the same name is an error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"an algorithm named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def algorithm_specs() -> dict[str, AlgorithmSpec]:
    """Every registered algorithm, by name (importing all algorithm modules first)."""
    import fastmeta.algorithms as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def algorithm_spec(name: str) -> AlgorithmSpec:
    """The spec of ``name``, or an error listing the valid names."""
    specs = algorithm_specs()
    if name not in specs:
        raise ValueError(f"algorithm.name={name!r} is not valid; choose one of {', '.join(specs)}")
    return specs[name]


def build_options(spec: AlgorithmSpec, options: dict[str, Any]) -> Any:
    """``algorithm.options`` checked against ``spec.options`` (``None`` when it has none)."""
    from fastmeta.config import from_dict

    if spec.options is None:
        if options:
            raise ValueError(
                f"algorithm {spec.name!r} takes no algorithm.options; got {', '.join(options)}"
            )
        return None
    return from_dict(spec.options, options, "algorithm.options.")
