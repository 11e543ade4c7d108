"""The familiar learn2learn-style task API for any map-style dataset of ``(x, y, ...)`` items.

``TaskDataset(MetaDataset(ds), task_transforms=[NWays(ds, 5), KShots(ds, 1), LoadData(ds),
RemapLabels(ds), ConsecutiveLabels(ds)])`` then ``X, y = tasks.sample()``. Unlike learn2learn, all
randomness comes from an explicit ``seed``: task ``i`` is a pure function of (seed, i), so
``tasks[i]`` is reproducible and ``sample()`` walks a stream whose position is an integer.
Written from learn2learn's documented behaviour; the transforms are in
:mod:`fastmeta.data.task_transforms`. For speed on image benchmarks use :class:`TaskSet`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence, Sized
from contextlib import suppress
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

    Labels are any scalars (ints, strings, 0-d tensors). They are read without loading the data
    when the dataset exposes them and no ``target_transform`` changes them: a ``targets`` or
    ``labels`` attribute with one entry per item (torchvision style), or the second tensor of a
    ``TensorDataset``; pass ``labels`` to supply them yourself. Otherwise every item is read once.
    Every item later loaded by a task is checked against its indexed label.

    Attributes: ``labels`` (sorted distinct labels), ``labels_to_indices`` (label -> item
    indices), ``indices_to_labels`` (item index -> label). The transforms work on class codes:
    ``item_labels`` holds each item's code and ``class_indices`` the items of each code; an
    integer label is its own code, other labels are numbered in the order of ``labels``.
    """

    def __init__(self, dataset: Dataset[Any], labels: Sequence[Any] | Tensor | None = None) -> None:
        self.dataset = dataset
        size = len(cast(Sized, dataset))  # map-style: torch's Dataset declares no __len__
        if labels is None:
            labels = _known_labels(dataset, size)
        if labels is None:
            labels = [label_value(dataset[index][1]) for index in range(size)]
        codes, distinct = _encode(labels)
        if codes.numel() != size:
            raise ValueError(
                f"got {codes.numel()} labels for a dataset of {size} items; pass one each"
            )
        order = torch.argsort(codes, stable=True)
        classes, counts = torch.unique_consecutive(codes[order], return_counts=True)
        self.item_labels = codes
        self.class_indices: dict[int, Tensor] = dict(
            zip(classes.tolist(), torch.split(order, counts.tolist()), strict=True)
        )
        self.classes: list[int] = classes.tolist()
        self.labels: list[Any] = self.classes if distinct is None else distinct
        self._values: dict[int, Any] | None = (
            None if distinct is None else dict(enumerate(distinct))
        )
        self._codes: dict[Any, int] | None = (
            None if distinct is None else {value: code for code, value in enumerate(distinct)}
        )

    def code(self, label: Any) -> int:
        """The class code of ``label``; a ValueError when no item carries it."""
        value = label_value(label)
        code = value if self._codes is None else self._codes.get(value)
        if not isinstance(code, int) or isinstance(code, bool) or code not in self.class_indices:
            raise ValueError(f"label {value!r} does not occur in the dataset")
        return code

    def label(self, code: int) -> Any:
        """The label of class code ``code``."""
        return code if self._values is None else self._values[code]

    def load(self, index: int) -> Any:
        """Item ``index`` of the dataset, refused when it carries another label than indexed."""
        item = self[index]
        expected = self.label(int(self.item_labels[index]))
        if label_value(item[1]) != expected:
            raise ValueError(
                f"item {index} carries label {label_value(item[1])!r} but the MetaDataset "
                f"indexed it under {expected!r}; pass labels= with the label of every item"
            )
        return item

    @cached_property
    def labels_to_indices(self) -> dict[Any, list[int]]:
        return {self.label(c): indices.tolist() for c, indices in self.class_indices.items()}

    @cached_property
    def indices_to_labels(self) -> dict[int, Any]:
        return {i: self.label(c) for i, c in enumerate(self.item_labels.tolist())}

    def __len__(self) -> int:
        return self.item_labels.numel()

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]


def label_value(label: Any) -> Hashable:
    """A label as a hashable scalar: 0-d tensors and numpy scalars become Python numbers."""
    if isinstance(label, Tensor) or hasattr(label, "item"):
        try:
            value: Hashable = label.item()
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"labels must be scalars; got {label!r} ({error})") from error
        return value
    if not isinstance(label, Hashable):
        raise ValueError(f"labels must be scalars (int, str, ...); got {label!r}")
    return label


def _encode(labels: Sequence[Any] | Tensor) -> tuple[Tensor, list[Any] | None]:
    """Each item's class code, and the distinct labels when they are not integers (None: an
    integer label is its own code)."""
    if isinstance(labels, Tensor) and not labels.dtype.is_floating_point and labels.numel():
        return labels.reshape(-1).long().cpu(), None
    values = [label_value(label) for label in labels]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.long), None
    distinct: list[Any] = list(dict.fromkeys(values))
    with suppress(TypeError):  # labels of mixed types keep their order of first appearance
        distinct.sort()
    code = {value: index for index, value in enumerate(distinct)}
    return torch.tensor([code[v] for v in values], dtype=torch.long), distinct


def _known_labels(dataset: Dataset[Any], size: int) -> Sequence[Any] | Tensor | None:
    """The labels a dataset already exposes for its items, or None."""
    if isinstance(dataset, MetaDataset):
        return [dataset.label(c) for c in dataset.item_labels.tolist()]
    if getattr(dataset, "target_transform", None) is not None:
        return None  # its items carry transformed labels: read them
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) >= 2:
        second: Tensor = tensors[1]  # a TensorDataset's (inputs, labels, ...)
        return second
    for name in ("targets", "labels"):
        labels: Sequence[Any] | Tensor | None = getattr(dataset, name, None)
        if labels is not None and not callable(labels) and len(labels) == size:
            return labels
    return None


def as_meta_dataset(dataset: Dataset[Any]) -> MetaDataset:
    """``dataset`` itself if it is a MetaDataset, else a MetaDataset around it."""
    return dataset if isinstance(dataset, MetaDataset) else MetaDataset(dataset)


@dataclass(frozen=True)
class TaskDescription:
    """The items of a task while the transforms shape it.

    ``indices``: dataset indices; ``labels``: their class codes, or their new labels once
    ``remapped`` (set by :class:`RemapLabels`); ``load``: whether the data is read from the
    dataset (set by :class:`LoadData`), else the task holds the indices themselves.
    """

    indices: Tensor
    labels: Tensor
    load: bool = False
    remapped: bool = False

    def select(self, rows: Tensor) -> TaskDescription:
        """The items at ``rows`` (a subset or reordering)."""
        return replace(self, indices=self.indices[rows], labels=self.labels[rows])


TaskTransform = Callable[[TaskDescription | None, torch.Generator], TaskDescription]


class TaskDataset:
    """Tasks built by applying ``task_transforms`` in order, starting from the whole dataset.

    A loaded task holds each item as the dataset gives it (every field, its own label), with
    the label replaced only when :class:`RemapLabels` relabelled the task.

    Args:
        dataset: a MetaDataset (any other map-style dataset is wrapped in one).
        task_transforms: callables ``(description or None, generator) -> description``.
        num_tasks: ``-1`` for an endless stream of distinct tasks; ``n > 0`` for a fixed pool
            of ``n`` tasks that ``sample()`` picks from at random.
        task_collate: turns the list of items into the task
            (default ``torch.utils.data.default_collate``, giving ``[X, y]``).
        seed: the stream; task ``i`` depends only on (seed, i).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        task_transforms: Sequence[TaskTransform] | None = None,
        num_tasks: int = -1,
        task_collate: Callable[[list[Any]], Any] | None = None,
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
        indices = description.indices.tolist()
        labels = description.labels.tolist()
        if not description.remapped:
            labels = [self.dataset.label(code) for code in labels]
        if not description.load:
            return self.task_collate(list(zip(indices, labels, strict=True)))
        items = [self.dataset.load(i) for i in indices]
        if description.remapped:
            items = [(item[0], label, *item[2:]) for item, label in zip(items, labels, strict=True)]
        return self.task_collate(items)

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
