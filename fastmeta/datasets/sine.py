"""Sine-wave regression tasks, the toy problem of the MAML paper (Finn et al. 2017, sec. 5.1).

A task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]``, phase ``phi ~ U[0, pi]`` and
inputs ``x ~ U[-5, 5]``. Episode ``i`` of a seeded source depends only on ``(seed, i)``, so
evaluation sets are fixed and training resumes exactly. The interface (``batch``, ``episodes``,
``evaluation``) is the one image task sets have, so the trainer treats both alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.tasks import TaskBatch

_MASK = (1 << 63) - 1


def episode_generator(seed: int, index: int) -> torch.Generator:
    """A generator for episode ``index`` of stream ``seed`` (splitmix-style mixing)."""
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 31)) * 0x94D049BB133111EB) & _MASK
    return torch.Generator().manual_seed(z ^ (z >> 29))


@dataclass(frozen=True)
class SineTasks:
    """A seeded stream of sine-regression episodes.

    Each episode has ``shots`` support and ``queries`` query points; ``batch(b)`` holds episodes
    ``b * batch_size`` onward.
    """

    shots: int = 10
    queries: int = 10
    seed: int = 0
    batch_size: int = 25
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self) -> None:
        if self.shots < 1 or self.queries < 1 or self.batch_size < 1:
            raise ValueError(
                f"shots, queries and batch_size must be >= 1; got {self.shots}, {self.queries}, "
                f"{self.batch_size}"
            )

    def _draw(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        g = episode_generator(self.seed, index)
        amplitude = torch.empty(()).uniform_(*self.amplitude, generator=g)
        phase = torch.empty(()).uniform_(*self.phase, generator=g)
        x = torch.empty(self.shots + self.queries, 1).uniform_(*self.x_range, generator=g)
        return amplitude, phase, x

    def parameters(self, start: int, count: int) -> tuple[Tensor, Tensor]:
        """Amplitudes and phases ``[count]`` of episodes ``start..start+count-1``."""
        draws = [self._draw(i)[:2] for i in range(start, start + count)]
        return torch.stack([a for a, _ in draws]), torch.stack([p for _, p in draws])

    def episodes(self, start: int, count: int) -> TaskBatch:
        """Episodes ``start..start+count-1``: ``x, y`` shaped ``[count, points, 1]``."""
        draws = [self._draw(i) for i in range(start, start + count)]
        amplitude = torch.stack([a for a, _, _ in draws])[:, None, None]
        phase = torch.stack([p for _, p, _ in draws])[:, None, None]
        x = torch.stack([x for _, _, x in draws])
        y = sine_curve(amplitude, phase, x)
        s = self.shots
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:])

    def batch(self, index: int) -> TaskBatch:
        return self.episodes(index * self.batch_size, self.batch_size)

    def evaluation(self, num_episodes: int) -> Iterator[TaskBatch]:
        """Episodes ``0..num_episodes-1`` in batches of ``batch_size``."""
        for start in range(0, num_episodes, self.batch_size):
            yield self.episodes(start, min(self.batch_size, num_episodes - start))


def sine_curve(amplitude: Tensor | float, phase: Tensor | float, x: Tensor) -> Tensor:
    """The ground-truth function of a task at ``x``."""
    return amplitude * torch.sin(x - phase)
