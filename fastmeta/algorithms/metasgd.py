"""Meta-SGD (Li et al. 2017): MAML with a learned learning rate for every parameter entry.

The inner step is ``theta' = theta - alpha * grad`` where ``alpha`` has the shape of ``theta``
(one rate per weight, not per tensor) and is meta-learned together with the initialisation:
the rates are parameters of this module, so the outer optimizer updates both. The rates are
used as they are (no sign constraint), as in the paper, so a rate may turn negative.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fastmeta.algorithms.maml import MAML, maml_arguments
from fastmeta.functional.inner import LearningRate

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig


class MetaSGD(MAML):
    """MAML with meta-learned per-parameter inner learning rates.

    Args:
        model: the network whose initial parameters are meta-learned.
        lr: the initial value of every learned rate.
        **kwargs: as for :class:`MAML`; with ``adapt=`` only the adapted parameters get rates.
    """

    def __init__(self, model: nn.Module, lr: float = 0.01, **kwargs: Any) -> None:
        if not isinstance(lr, int | float):
            raise ValueError(
                f"Meta-SGD's lr is the initial value of the learned rates: a number, got {lr!r}"
            )
        super().__init__(model, lr=float(lr), **kwargs)
        params = dict(model.named_parameters())
        self.rates = nn.ParameterDict(
            {
                _key(n): nn.Parameter(torch.full_like(params[n], float(lr)))
                for n in self.adaptable_names()
            }
        )

    def inner_lr(self) -> LearningRate:
        """The learned rates, by parameter name (each shaped like its parameter)."""
        return {n: self.rates[_key(n)] for n in self.adaptable_names()}


def _key(name: str) -> str:
    """A ParameterDict key for parameter ``name`` (keys cannot hold dots)."""
    return name.replace(".", "/")


def build_metasgd(
    settings: AlgorithmConfig, options: None, model: nn.Module, input_shape: tuple[int, ...]
) -> MetaSGD:
    """Meta-SGD from a run's ``algorithm`` section: ``inner_lr`` is the rates' initial value."""
    return MetaSGD(model, **maml_arguments(settings))
