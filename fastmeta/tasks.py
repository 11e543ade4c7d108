"""Tasks and task batches: the one data structure every algorithm consumes.

A task is a support set (to adapt on) and a query set (to evaluate the adapted model on).
A :class:`TaskBatch` stacks tasks of the same shape along a leading task dimension, so the
engine can run the inner loop over all tasks at once (``vmap``) or one by one (a loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import Tensor


@dataclass(frozen=True)
class Task:
    """One few-shot task: ``support_x [S, ...]``, ``support_y [S]``,
    ``query_x [Q, ...]``, ``query_y [Q]``, and optionally ``classes [N]``, the dataset class
    behind each label (see :class:`TaskBatch`).
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor | None = None


@dataclass(frozen=True)
class TaskBatch:
    """A meta-batch of same-shaped tasks with a leading task dimension ``B``.

    ``support_x [B, S, ...]``, ``support_y [B, S, ...]``, ``query_x [B, Q, ...]``,
    ``query_y [B, Q, ...]``. Labels are integer class indices ``0..ways-1`` for classification
    or real targets for regression. ``classes [B, N]`` (optional) is the dataset class behind
    label ``j`` of each task, e.g. the store class of each way, for algorithms that train a
    classifier over all training classes (the transfer baselines); ``None`` when unknown.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor | None = None

    def __post_init__(self) -> None:
        sizes = {t.shape[0] for t in (self.support_x, self.support_y, self.query_x, self.query_y)}
        if len(sizes) != 1:
            raise ValueError(
                "TaskBatch tensors must share their leading task dimension; got shapes "
                f"support_x {tuple(self.support_x.shape)}, "
                f"support_y {tuple(self.support_y.shape)}, "
                f"query_x {tuple(self.query_x.shape)}, query_y {tuple(self.query_y.shape)}"
            )
        if self.support_x.shape[1] != self.support_y.shape[1]:
            raise ValueError(
                f"support_x has {self.support_x.shape[1]} examples per task but support_y has "
                f"{self.support_y.shape[1]}"
            )
        if self.query_x.shape[1] != self.query_y.shape[1]:
            raise ValueError(
                f"query_x has {self.query_x.shape[1]} examples per task but query_y has "
                f"{self.query_y.shape[1]}"
            )
        if self.classes is not None and (
            self.classes.dim() != 2 or self.classes.shape[0] != self.support_x.shape[0]
        ):
            raise ValueError(
                f"classes must be [tasks, ways] with {self.support_x.shape[0]} tasks; got shape "
                f"{tuple(self.classes.shape)}"
            )

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def __len__(self) -> int:
        return self.num_tasks

    @property
    def device(self) -> torch.device:
        return self.support_x.device

    def task(self, index: int) -> Task:
        """The task at ``index`` without its task dimension."""
        return Task(
            self.support_x[index],
            self.support_y[index],
            self.query_x[index],
            self.query_y[index],
            None if self.classes is None else self.classes[index],
        )

    def __iter__(self) -> Iterator[Task]:
        return (self.task(i) for i in range(self.num_tasks))

    def slice(self, start: int, stop: int) -> TaskBatch:
        """Tasks ``start..stop-1`` as a smaller batch (views, no copy)."""
        return TaskBatch(
            self.support_x[start:stop],
            self.support_y[start:stop],
            self.query_x[start:stop],
            self.query_y[start:stop],
            None if self.classes is None else self.classes[start:stop],
        )

    def chunks(self, size: int | None) -> Iterator[TaskBatch]:
        """Consecutive sub-batches of at most ``size`` tasks (``None``: the whole batch)."""
        if size is None or size >= self.num_tasks:
            yield self
            return
        if size < 1:
            raise ValueError(f"chunk size must be a positive integer or None, got {size}")
        for start in range(0, self.num_tasks, size):
            yield self.slice(start, start + size)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TaskBatch:
        """Move every tensor to ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> TaskBatch:
        """Page-locked copies, so ``to("cuda", non_blocking=True)`` overlaps with compute."""
        return self._map(Tensor.pin_memory)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> TaskBatch:
        """The batch with ``fn`` applied to every tensor (``classes`` included)."""
        return TaskBatch(
            fn(self.support_x),
            fn(self.support_y),
            fn(self.query_x),
            fn(self.query_y),
            None if self.classes is None else fn(self.classes),
        )

    @staticmethod
    def stack(tasks: Sequence[Task]) -> TaskBatch:
        """Stack same-shaped tasks into a batch."""
        if not tasks:
            raise ValueError("cannot stack an empty list of tasks")
        return TaskBatch(
            torch.stack([t.support_x for t in tasks]),
            torch.stack([t.support_y for t in tasks]),
            torch.stack([t.query_x for t in tasks]),
            torch.stack([t.query_y for t in tasks]),
            _stack_classes(tasks),
        )


def _stack_classes(tasks: Sequence[Task]) -> Tensor | None:
    """The tasks' ``classes`` stacked, or ``None`` when any task lacks them."""
    if any(t.classes is None for t in tasks):
        return None
    return torch.stack([cast(Tensor, t.classes) for t in tasks])  # none is None (checked above)


class TaskSource(Protocol):
    """A seeded stream of tasks drawn by index: what the trainer and evaluation read
    (``TaskSet`` and ``SineTasks`` are ones). Episode ``i`` depends only on the seed and ``i``."""

    batch_size: int

    def batch(self, index: int) -> TaskBatch:
        """Meta-batch ``index``: episodes ``index * batch_size`` onward."""
        ...

    def episodes(self, start: int, count: int) -> TaskBatch:
        """Episodes ``start .. start + count - 1``."""
        ...

    def evaluation(self, num_episodes: int) -> Iterable[TaskBatch]:
        """Episodes ``0 .. num_episodes - 1``, in batches of ``batch_size``."""
        ...
