"""ANIL and BOIL: MAML whose inner loop adapts only the head, or only the body.

ANIL (Raghu et al. 2020, "Almost No Inner Loop") adapts only the final classifier on each task;
the body (the feature extractor) changes only in the outer loop. BOIL (Oh et al. 2021, "Body
Only update in Inner Loop") does the opposite: the head is frozen in the inner loop and the body
adapts. Both meta-learn every parameter in the outer loop.

The head is the module named ``head`` (fastmeta's :class:`~fastmeta.models.Conv4` and
:class:`~fastmeta.models.MLP` both have one: the last Linear layer), else the last
``nn.Linear`` of the model; pass ``head=`` names to choose another split.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import nn

from fastmeta.algorithms.maml import MAML, maml_arguments
from fastmeta.functional.params import name_filter

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig


def head_names(model: nn.Module) -> list[str]:
    """Parameter names of the model's head: module ``head``, else its last ``nn.Linear``."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return [f"head.{n}" for n, _ in head.named_parameters()]
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"{type(model).__name__} has no module named 'head' and no nn.Linear layer; "
            "pass head=[parameter names] to say which parameters form the head"
        )
    return [f"{linears[-1]}.{n}" for n, _ in model.get_submodule(linears[-1]).named_parameters()]


class ANIL(MAML):
    """MAML adapting only the head in the inner loop (Raghu et al. 2020).

    Args:
        model: the network; its head is found by :func:`head_names` unless ``head`` is given.
        head: parameter names or prefixes forming the head (default: found automatically).
        **kwargs: as for :class:`MAML` (all but ``adapt``, which ANIL sets).
    """

    def __init__(self, model: nn.Module, *, head: Iterable[str] | None = None, **kwargs: Any):
        if "adapt" in kwargs:
            raise ValueError("ANIL adapts the head; give head=[names], not adapt=")
        names = list(head) if head is not None else head_names(model)
        super().__init__(model, adapt=names, **kwargs)
        self.head = names


class BOIL(MAML):
    """MAML adapting everything but the head in the inner loop (Oh et al. 2021).

    Args:
        model: the network; its head is found by :func:`head_names` unless ``head`` is given.
        head: parameter names or prefixes forming the head, frozen in the inner loop.
        **kwargs: as for :class:`MAML` (all but ``adapt``, which BOIL sets).
    """

    def __init__(self, model: nn.Module, *, head: Iterable[str] | None = None, **kwargs: Any):
        if "adapt" in kwargs:
            raise ValueError("BOIL adapts the body; give head=[names] to freeze, not adapt=")
        names = list(head) if head is not None else head_names(model)
        in_head = name_filter(names)
        super().__init__(model, adapt=lambda name: not in_head(name), **kwargs)
        self.head = names


def _arguments(settings: AlgorithmConfig) -> dict[str, Any]:
    """MAML's settings without ``adapt`` (which ANIL and BOIL choose; the registry refuses a
    configured one)."""
    arguments = maml_arguments(settings)
    del arguments["adapt"]
    return arguments


def build_anil(
    settings: AlgorithmConfig, options: None, model: nn.Module, input_shape: tuple[int, ...]
) -> ANIL:
    """ANIL from a run's ``algorithm`` section: MAML's settings, the inner loop on the head."""
    return ANIL(model, **_arguments(settings))


def build_boil(
    settings: AlgorithmConfig, options: None, model: nn.Module, input_shape: tuple[int, ...]
) -> BOIL:
    """BOIL from a run's ``algorithm`` section: MAML's settings, the head frozen inside."""
    return BOIL(model, **_arguments(settings))
