"""The familiar learn2learn-style task API for any map-style dataset of ``(x, y)`` pairs.

``TaskDataset(MetaDataset(ds), task_transforms=[NWays(ds, 5), KShots(ds, 1), LoadData(ds),
RemapLabels(ds), ConsecutiveLabels(ds)])`` then ``X, y = tasks.sample()``. Unlike learn2learn, all
randomness comes from an explicit ``seed``: task ``i`` is a pure function of (seed, i), so
``tasks[i]`` is reproducible and ``sample()`` walks a stream whose position is an integer.
Written from learn2learn's documented behaviour; the transforms are in
:mod:`fastmeta.data.task_transforms`. For speed on image benchmarks use :class:`TaskSet`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import count as count_from
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from fastmeta.data.counter_rng import derive_seed

# Seeds the pick of pool tasks by sample(), apart from the tasks' own stream.
_POOL_STREAM = 0x5A3C96E1


class MetaDataset(Dataset[Any]):
    """A map-style dataset plus the index of which items carry which label.

    The labels are read without loading the data when the dataset exposes them: a ``targets`` or
    ``labels`` attribute with one entry per item (torchvision style), or the second tensor of a
    ``TensorDataset``; pass ``labels`` to supply them yourself. Otherwise every item is read once.

    Attributes: ``labels`` (sorted distinct labels), ``labels_to_indices`` (label -> item indices)
    and ``indices_to_labels`` (item index -> label).
    """

    def __init__(self, dataset: Dataset[Any], labels: Sequence[int] | Tensor | None = None) -> None:
        self.dataset = dataset
        size = len(cast(Sized, dataset))  # map-style: torch's Dataset declares no __len__
        if labels is None:
            labels = _known_labels(dataset, size)
        if labels is None:
            labels = [int(dataset[index][1]) for index in range(size)]
        item_labels = torch.as_tensor(labels).long().reshape(-1)
        if item_labels.numel() != size:
            raise ValueError(
                f"got {item_labels.numel()} labels for a dataset of {size} items; pass one each"
            )
        order = torch.argsort(item_labels, stable=True)
        distinct, counts = torch.unique_consecutive(item_labels[order], return_counts=True)
        self.item_labels = item_labels
        self.class_indices: dict[int, Tensor] = dict(
            zip(distinct.tolist(), torch.split(order, counts.tolist()), strict=True)
        )
        self.labels: list[int] = distinct.tolist()

    @cached_property
    def labels_to_indices(self) -> dict[int, list[int]]:
        return {label: indices.tolist() for label, indices in self.class_indices.items()}

    @cached_property
    def indices_to_labels(self) -> dict[int, int]:
        return dict(enumerate(self.item_labels.tolist()))

    def __len__(self) -> int:
        return self.item_labels.numel()

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]


def _known_labels(dataset: Dataset[Any], size: int) -> Sequence[int] | Tensor | None:
    """The labels a dataset already exposes, or None."""
    if isinstance(dataset, MetaDataset):
        return dataset.item_labels
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) >= 2:
        second: Tensor = tensors[1]  # a TensorDataset's (inputs, labels, ...)
        return second
    for name in ("targets", "labels"):
        labels: Sequence[int] | Tensor | None = getattr(dataset, name, None)
        if labels is not None and not callable(labels) and len(labels) == size:
            return labels
    return None


def as_meta_dataset(dataset: Dataset[Any]) -> MetaDataset:
    """``dataset`` itself if it is a MetaDataset, else a MetaDataset around it."""
    return dataset if isinstance(dataset, MetaDataset) else MetaDataset(dataset)


@dataclass(frozen=True)
class TaskDescription:
    """The items of a task while the transforms shape it.

    ``indices``: dataset indices; ``labels``: their (possibly remapped) labels; ``load``:
    whether the data is read from the dataset (set by :class:`LoadData`), else the task holds
    the indices themselves.
    """

    indices: Tensor
    labels: Tensor
    load: bool = False

    def select(self, rows: Tensor) -> TaskDescription:
        """The items at ``rows`` (a subset or reordering)."""
        return replace(self, indices=self.indices[rows], labels=self.labels[rows])


TaskTransform = Callable[[TaskDescription | None, torch.Generator], TaskDescription]


class TaskDataset:
    """Tasks built by applying ``task_transforms`` in order, starting from the whole dataset.

    Args:
        dataset: a MetaDataset (any other map-style dataset is wrapped in one).
        task_transforms: callables ``(description or None, generator) -> description``.
        num_tasks: ``-1`` for an endless stream of distinct tasks; ``n > 0`` for a fixed pool
            of ``n`` tasks that ``sample()`` picks from at random.
        task_collate: turns the list of ``(x, y)`` items into the task
            (default ``torch.utils.data.default_collate``, giving ``[X, y]``).
        seed: the stream; task ``i`` depends only on (seed, i).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        task_transforms: Sequence[TaskTransform] | None = None,
        num_tasks: int = -1,
        task_collate: Callable[[list[tuple[Any, int]]], Any] | None = None,
        seed: int = 0,
    ) -> None:
        if num_tasks != -1 and (isinstance(num_tasks, bool) or num_tasks < 1):
            raise ValueError(
                f"num_tasks must be -1 (endless) or a positive number of tasks, got {num_tasks}"
            )
        self.dataset = as_meta_dataset(dataset)
        self.task_transforms = list(task_transforms or [])
        self.num_tasks = num_tasks
        self.task_collate = task_collate or default_collate
        self.seed = seed
        self.position = 0

    def description(self, index: int) -> TaskDescription:
        """The items of task ``index``, before loading."""
        if self.num_tasks != -1 and not 0 <= index < self.num_tasks:
            raise IndexError(f"task {index} is outside this pool of {self.num_tasks} tasks")
        generator = torch.Generator().manual_seed(derive_seed(self.seed, index))
        description = None
        for transform in self.task_transforms:
            description = transform(description, generator)
        if description is None:
            indices = torch.arange(len(self.dataset))
            description = TaskDescription(indices, self.dataset.item_labels)
        return description

    def __getitem__(self, index: int) -> Any:
        description = self.description(index)
        pairs = zip(description.indices.tolist(), description.labels.tolist(), strict=True)
        if description.load:
            return self.task_collate([(self.dataset[i][0], label) for i, label in pairs])
        return self.task_collate(list(pairs))

    def sample(self) -> Any:
        """The next task of the stream (a random one of the pool when ``num_tasks > 0``)."""
        step = self.position
        self.position += 1
        if self.num_tasks == -1:
            return self[step]
        generator = torch.Generator().manual_seed(derive_seed(self.seed ^ _POOL_STREAM, step))
        return self[int(torch.randint(self.num_tasks, (), generator=generator))]

    def __len__(self) -> int:
        if self.num_tasks == -1:
            raise TypeError("an endless TaskDataset (num_tasks=-1) has no length")
        return self.num_tasks

    def __iter__(self) -> Iterator[Any]:
        indices = count_from() if self.num_tasks == -1 else range(self.num_tasks)
        return (self[index] for index in indices)
