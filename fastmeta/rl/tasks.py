"""Task distributions and seeded task streams: the meta-RL counterpart of a ``TaskSource``.

A task is a small parameter vector (a goal position, a target velocity, a direction, an index
into Meta-World's goals) that an environment turns into a reward function. A
:class:`TaskStream` draws task ``i`` from its own generator, seeded by ``(seed, i)`` alone, so
any task can be drawn alone, in any batch, on any process, and a resumed run sees the tasks an
uninterrupted one sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.rl.seeding import generator, seed_of

Draw = Callable[[torch.Generator], Tensor]


@dataclass(frozen=True)
class Tasks:
    """Tasks ``indices`` (their positions in the stream) with their parameters ``[B, dim]``."""

    indices: tuple[int, ...]
    params: Tensor

    def __len__(self) -> int:
        return len(self.indices)

    def slice(self, start: int, count: int) -> Tasks:
        """Tasks ``start .. start + count - 1`` of this batch."""
        return Tasks(self.indices[start : start + count], self.params[start : start + count])


@dataclass(frozen=True)
class TaskDistribution:
    """How one task's parameters are drawn: ``draw(generator) -> Tensor [dim]``."""

    dim: int
    draw: Draw
    about: str


def uniform_box(low: float, high: float, dim: int) -> TaskDistribution:
    """Parameters uniform in ``[low, high]^dim`` (goal positions, target velocities)."""

    def draw(g: torch.Generator) -> Tensor:
        return low + (high - low) * torch.rand(dim, generator=g, dtype=torch.float64)

    return TaskDistribution(dim, draw, f"uniform in [{low:g}, {high:g}]^{dim}")


def random_sign() -> TaskDistribution:
    """-1 or +1 with equal probability (backward or forward)."""

    def draw(g: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (1,), generator=g).to(torch.float64) * 2 - 1

    return TaskDistribution(1, draw, "-1 or +1 (backward or forward)")


def unit_circle() -> TaskDistribution:
    """A direction uniform on the unit circle."""

    def draw(g: torch.Generator) -> Tensor:
        angle = 2 * math.pi * torch.rand(1, generator=g, dtype=torch.float64)
        return torch.cat([torch.cos(angle), torch.sin(angle)])

    return TaskDistribution(2, draw, "a direction uniform on the unit circle")


class TaskStream:
    """Task ``i`` of ``distribution`` drawn from the generator seeded by ``(seed, i)``."""

    def __init__(self, distribution: TaskDistribution, seed: int, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"a task batch needs at least one task, got batch_size={batch_size}")
        self.distribution = distribution
        self.seed = seed
        self.batch_size = batch_size

    def tasks(self, start: int, count: int) -> Tasks:
        """Tasks ``start .. start + count - 1``."""
        if start < 0 or count < 1:
            raise ValueError(f"tasks start at index 0 and count at least 1; got {start}, {count}")
        indices = tuple(range(start, start + count))
        params = [self.distribution.draw(generator(seed_of(self.seed, i))) for i in indices]
        return Tasks(indices, torch.stack(params))

    def batch(self, index: int) -> Tasks:
        """Meta-batch ``index``: tasks ``index * batch_size`` onward."""
        return self.tasks(index * self.batch_size, self.batch_size)

    def evaluation(self, count: int) -> Iterator[Tasks]:
        """Tasks ``0 .. count - 1`` in batches of ``batch_size``."""
        for start in range(0, count, self.batch_size):
            yield self.tasks(start, min(self.batch_size, count - start))
