"""Sine-wave regression tasks, the toy problem of the MAML paper (Finn et al. 2017, sec. 5.1).

A task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]``, phase ``phi ~ U[0, pi]`` and
inputs ``x ~ U[-5, 5]``. Batch ``i`` of a seeded source is the same whatever was drawn before,
so evaluation sets are fixed and training can resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.tasks import TaskBatch

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, index) over 63-bit seeds


def batch_generator(seed: int, index: int) -> torch.Generator:
    """A generator for batch ``index`` of the stream ``seed``, independent of other batches."""
    mixed = (seed * _MIX + index * 0xBF58476D1CE4E5B9 + 1) % (1 << 63)
    return torch.Generator().manual_seed(mixed)


@dataclass(frozen=True)
class SineTasks:
    """A seeded stream of sine-regression task batches.

    Each task has ``shots`` support points and ``queries`` query points.
    """

    shots: int = 10
    queries: int = 10
    seed: int = 0
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self) -> None:
        if self.shots < 1 or self.queries < 1:
            raise ValueError(f"shots and queries must be >= 1; got {self.shots}, {self.queries}")

    def parameters(self, index: int, size: int) -> tuple[Tensor, Tensor]:
        """Amplitudes and phases ``[size]`` of batch ``index``."""
        g = batch_generator(self.seed, index)
        amplitude = torch.empty(size).uniform_(*self.amplitude, generator=g)
        phase = torch.empty(size).uniform_(*self.phase, generator=g)
        return amplitude, phase

    def batch(self, index: int, size: int) -> TaskBatch:
        """Batch ``index`` of ``size`` tasks: ``x, y`` shaped ``[size, points, 1]``."""
        amplitude, phase = self.parameters(index, size)
        g = batch_generator(self.seed, index)
        g.manual_seed(g.initial_seed() ^ 0x5DEECE66D)  # inputs drawn from their own stream
        x = torch.empty(size, self.shots + self.queries, 1).uniform_(*self.x_range, generator=g)
        y = amplitude[:, None, None] * torch.sin(x - phase[:, None, None])
        s = self.shots
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:])


def sine_curve(amplitude: float, phase: float, x: Tensor) -> Tensor:
    """The ground-truth function of a task at ``x``."""
    return amplitude * torch.sin(x - phase)
