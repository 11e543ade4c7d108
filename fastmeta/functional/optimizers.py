"""Differentiable inner-loop optimizers: pure update rules over parameter dictionaries.

An optimizer holds only its hyper-parameters; its state (momentum buffers, Adam moments) is a
dictionary of tensors passed in and returned, so a whole inner loop stays one differentiable,
vmappable function of the initial parameters: the meta-gradient flows through the momentum and
the moments exactly as it flows through plain SGD steps. Learning rates come per parameter from
the caller (a float, or a tensor shaped like the parameter for Meta-SGD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.functional.params import Params

State = dict[str, Params]
Rates = Mapping[str, Tensor | float]
INNER_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


class InnerOptimizer:
    """An update rule ``(params, grads, state) -> (params, state)``."""

    def init(self, params: Params) -> State:
        """The state before the first step (none for plain SGD)."""
        return {}

    def step(
        self, params: Params, grads: Params, state: State, rates: Rates, step: int
    ) -> tuple[Params, State]:
        """Step ``step`` (0-based) with learning rate ``rates[name]`` for each parameter."""
        raise NotImplementedError


@dataclass(frozen=True)
class SGD(InnerOptimizer):
    """SGD with optional (Nesterov) momentum, the update of ``torch.optim.SGD`` (no dampening).

    The buffer starts at zero, so the first step is ``buf = grad`` as in torch.
    """

    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("Nesterov momentum needs momentum > 0")

    def init(self, params: Params) -> State:
        if self.momentum == 0.0:
            return {}
        return {"buffer": {n: torch.zeros_like(p) for n, p in params.items()}}

    def step(
        self, params: Params, grads: Params, state: State, rates: Rates, step: int
    ) -> tuple[Params, State]:
        if self.momentum == 0.0:
            return {n: p - rates[n] * grads[n] for n, p in params.items()}, state
        buffer = {n: self.momentum * state["buffer"][n] + g for n, g in grads.items()}
        direction = (
            {n: g + self.momentum * buffer[n] for n, g in grads.items()}
            if self.nesterov
            else buffer
        )
        return {n: p - rates[n] * direction[n] for n, p in params.items()}, {"buffer": buffer}


@dataclass(frozen=True)
class Adam(InnerOptimizer):
    """Adam (Kingma and Ba 2015) with bias correction, epsilon inside the square root.

    The step is ``lr * m_hat / sqrt(v_hat + eps**2)``. ``torch.optim.Adam`` divides by
    ``sqrt(v_hat) + eps`` instead (``eps_inside_root=False`` here): the two differ by about
    ``eps / |grad|`` relative to the step, but the derivative of ``sqrt(v)`` is infinite at
    ``v = 0``, so a meta-gradient through torch's form is NaN for any parameter whose gradient
    is exactly zero (a dead ReLU unit, an unused input); with ``eps`` inside it stays finite.
    ``betas=(0, 0.999)`` is the Adam Reptile uses in its inner loop (no first-moment averaging).
    """

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    eps_inside_root: bool = True

    def __post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam betas must be two numbers in [0, 1), got {self.betas}")
        if self.eps <= 0.0:
            raise ValueError(
                f"Adam eps must be positive (it keeps sqrt differentiable), got {self.eps}"
            )

    def init(self, params: Params) -> State:
        return {
            "m": {n: torch.zeros_like(p) for n, p in params.items()},
            "v": {n: torch.zeros_like(p) for n, p in params.items()},
        }

    def step(
        self, params: Params, grads: Params, state: State, rates: Rates, step: int
    ) -> tuple[Params, State]:
        beta1, beta2 = self.betas
        m = {n: beta1 * state["m"][n] + (1 - beta1) * g for n, g in grads.items()}
        v = {n: beta2 * state["v"][n] + (1 - beta2) * g * g for n, g in grads.items()}
        first = 1 - beta1 ** (step + 1)
        second = 1 - beta2 ** (step + 1)
        new = {
            n: p - rates[n] * (m[n] / first) / self.denominator(v[n] / second)
            for n, p in params.items()
        }
        return new, {"m": m, "v": v}

    def denominator(self, v_hat: Tensor) -> Tensor:
        if self.eps_inside_root:
            return torch.sqrt(v_hat + self.eps**2)
        return torch.sqrt(v_hat) + self.eps


def inner_optimizer(
    name: str,
    *,
    momentum: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> InnerOptimizer:
    """The inner optimizer called ``name`` (``"sgd"``, with optional momentum, or ``"adam"``)."""
    if name == "sgd":
        return SGD(momentum=momentum)
    if name == "adam":
        return Adam(betas=betas, eps=eps)
    raise ValueError(
        f"inner optimizer {name!r} is not valid; choose one of {', '.join(INNER_OPTIMIZERS)}"
    )
