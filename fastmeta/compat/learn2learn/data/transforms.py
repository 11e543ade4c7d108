"""learn2learn's task transforms, in its form: ``transform(task_description) -> description``.

Each built-in one draws its choice with fastmeta's transform of the same name
(:mod:`fastmeta.data.task_transforms`) on the description's item positions, seeded from the
global ``random`` module, so user-written transforms in learn2learn's form (functions of a list
of :class:`~fastmeta.compat.learn2learn.data.task_dataset.DataDescription`, or subclasses of
:class:`TaskTransform`) mix freely with them. Where learn2learn differs:

- labels follow the items: after ``RemapLabels``, ``ConsecutiveLabels`` orders the items by
  their new labels (``0, 0, 1, 1, ...``), as learn2learn's documentation describes; its code
  sorts by the original labels, so the new ones come in a random order there;
- ``RemapLabels(shuffle=False)`` numbers the classes in order of first appearance (learn2learn:
  in the order of a Python set);
- a loaded item whose label is not the one indexed by the MetaDataset is refused, not
  relabelled; ``FusedNWaysKShots(filter_labels=[])`` is refused when built.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
from torch.utils.data import Dataset

from fastmeta.compat.learn2learn.data.task_dataset import DataDescription, Description
from fastmeta.data import task_transforms as fast
from fastmeta.data.familiar import MetaDataset, TaskDescription, as_meta_dataset
from fastmeta.data.familiar import TaskTransform as SelectionRule

__all__ = [
    "ConsecutiveLabels",
    "FilterLabels",
    "FusedNWaysKShots",
    "KShots",
    "LoadData",
    "NWays",
    "RemapLabels",
    "TaskTransform",
]


def global_generator() -> torch.Generator:
    """A torch generator seeded from Python's global ``random`` state."""
    return torch.Generator().manual_seed(random.getrandbits(63))


class TaskTransform:
    """The base of task transforms: holds the ``dataset``; ``new_task()`` describes all of it."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset
        self.indexed: MetaDataset = as_meta_dataset(dataset)

    def new_task(self) -> Description:
        """A description of every item of the dataset."""
        return [DataDescription(i) for i in range(len(self.indexed))]

    def positions(self, description: Description) -> TaskDescription:
        """``description`` for fastmeta's transforms: the item positions with their classes."""
        codes = self.indexed.item_labels[
            torch.tensor([d.index for d in description], dtype=torch.long)
        ]
        labels = [d.label for d in description]
        remapped = bool(labels) and all(label is not None for label in labels)
        if remapped:
            codes = torch.tensor(labels)
        return TaskDescription(torch.arange(len(description)), codes, remapped=remapped)


class _Selection(TaskTransform):
    """A transform that keeps (or reorders) items, chosen by a fastmeta transform."""

    select: SelectionRule

    def __call__(self, task_description: Description | None = None) -> Description:
        generator = global_generator()
        if task_description is None:
            picked = self.select(None, generator)
            return [DataDescription(i) for i in picked.indices.tolist()]
        picked = self.select(self.positions(task_description), generator)
        seen: set[int] = set()
        kept = []
        for position in picked.indices.tolist():  # an item drawn twice is copied
            entry = task_description[position]
            kept.append(entry.copy() if position in seen else entry)
            seen.add(position)
        return kept


class NWays(_Selection):
    """Keep the items of ``n`` classes drawn at random from those present."""

    def __init__(self, dataset: Dataset[Any], n: int = 2) -> None:
        super().__init__(dataset)
        self.n = n
        self.select = fast.NWays(self.indexed, n)


class KShots(_Selection):
    """Keep ``k`` random items of each class present (``replacement``: drawn with it)."""

    def __init__(self, dataset: Dataset[Any], k: int = 1, replacement: bool = False) -> None:
        super().__init__(dataset)
        self.k = k
        self.replacement = replacement
        self.select = fast.KShots(self.indexed, k, replacement)


class FilterLabels(_Selection):
    """Keep the items whose label is in ``labels``."""

    def __init__(self, dataset: Dataset[Any], labels: Iterable[Any]) -> None:
        super().__init__(dataset)
        self.labels = list(labels)
        self.select = fast.FilterLabels(self.indexed, self.labels)


class FusedNWaysKShots(_Selection):
    """``FilterLabels``, ``NWays`` and ``KShots`` in one step (``filter_labels`` None: all)."""

    def __init__(
        self,
        dataset: Dataset[Any],
        n: int = 2,
        k: int = 1,
        replacement: bool = False,
        filter_labels: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(dataset)
        self.n, self.k, self.replacement = n, k, replacement
        self.filter_labels = None if filter_labels is None else list(filter_labels)
        self.select = fast.FusedNWaysKShots(self.indexed, n, k, replacement, self.filter_labels)


class ConsecutiveLabels(_Selection):
    """Order the items by label, so each class's items are consecutive."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        super().__init__(dataset)
        self.select = fast.ConsecutiveLabels(self.indexed)


class LoadData(TaskTransform):
    """Load each item from the dataset (checked against its indexed label)."""

    def __call__(self, task_description: Description | None = None) -> Description:
        if task_description is None:
            task_description = self.new_task()
        for entry in task_description:
            entry.transforms.append(self.indexed.load)
        return task_description


def loaded(item: Any, transform: str) -> Any:
    """``item``, refused when it is still a dataset index (the transform came before LoadData)."""
    if isinstance(item, int):
        raise TypeError(f"{transform} changes loaded items: put LoadData before it")
    return item


def _relabel(item: Any, label: int) -> list[Any]:
    """A loaded ``(x, y, ...)`` item with ``y`` replaced by ``label``."""
    item = loaded(item, "RemapLabels")
    return [item[0], label, *item[2:]]


class RemapLabels(TaskTransform):
    """Relabel the task's classes ``0 .. n-1``: at random if ``shuffle``, else in order of
    first appearance."""

    def __init__(self, dataset: Dataset[Any], shuffle: bool = True) -> None:
        super().__init__(dataset)
        self.shuffle = shuffle
        self.remap = fast.RemapLabels(self.indexed, shuffle)

    def __call__(self, task_description: Description | None = None) -> Description:
        if task_description is None:
            task_description = self.new_task()
        labels = self.remap(self.positions(task_description), global_generator()).labels
        for entry, label in zip(task_description, labels.tolist(), strict=True):
            entry.label = label
            entry.transforms.append(partial(_relabel, label=label))
        return task_description
