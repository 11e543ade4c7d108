"""Stopping a run that diverges, before its checkpoints fill with exploded weights.

A meta-loss that is NaN or infinite stops training at once (:class:`NonFiniteLossError`). So does
one that explodes while still finite: more than :data:`LOSS_FACTOR` times the median of the
run's first losses (its first :data:`REFERENCE_STEPS`, from the :data:`MIN_REFERENCE`-th step
on), or weights beyond :data:`WEIGHT_LIMIT`
(:class:`DivergedError`); the weights are checked before every checkpoint. The last checkpoint
written while the run looked :func:`healthy` is never rotated away, and when the run diverges
the ones written after it are set aside, so resuming goes back to it.
"""

from __future__ import annotations

import math
import statistics

import torch
from torch import nn

REFERENCE_STEPS = 20
MIN_REFERENCE = 5
LOSS_FACTOR = 1e6
HEALTHY_FACTOR = 10.0
WEIGHT_LIMIT = 1e6


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; training stopped at ``step``."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"meta-loss is {loss} at step {step}; lower the learning rates or set "
            "optimizer.grad_clip"
        )
        self.step = step


class DivergedError(RuntimeError):
    """Training diverged at ``step`` (the loss or the weights exploded while still finite)."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(
            f"training diverged at step {step}: {reason}; lower the learning rates or set "
            "optimizer.grad_clip"
        )
        self.step = step


def check_loss(loss: float, step: int, first_losses: list[float]) -> None:
    """Raise when ``loss`` (of meta-step ``step``) is non-finite or exploded relative to the
    median of ``first_losses``, which this call extends until it holds the reference steps."""
    if not math.isfinite(loss):
        raise NonFiniteLossError(step, loss)
    if len(first_losses) >= MIN_REFERENCE:
        reference = statistics.median(first_losses)
        if reference > 0 and loss > LOSS_FACTOR * reference:
            raise DivergedError(
                step,
                f"the meta-loss is {loss:.3g}, {loss / reference:.2g} times the median of the "
                f"first {len(first_losses)} steps' ({reference:.3g})",
            )
    if len(first_losses) < REFERENCE_STEPS:
        first_losses.append(loss)


def healthy(loss: float, first_losses: list[float]) -> bool:
    """Whether a run whose last meta-loss is ``loss`` looks sound: within
    :data:`HEALTHY_FACTOR` times the median of its first losses (always, before there are
    enough of them). The last checkpoint written while healthy is the one kept to go back to."""
    if len(first_losses) < MIN_REFERENCE:
        return math.isfinite(loss)
    return loss <= HEALTHY_FACTOR * statistics.median(first_losses)


@torch.no_grad()
def check_weights(module: nn.Module, step: int) -> None:
    """Raise when a parameter of ``module`` is non-finite or beyond :data:`WEIGHT_LIMIT`."""
    for name, parameter in module.named_parameters():
        largest = float(parameter.detach().abs().max()) if parameter.numel() else 0.0
        if not math.isfinite(largest) or largest > WEIGHT_LIMIT:
            raise DivergedError(step, f"parameter {name} reached {largest:.3g}")
