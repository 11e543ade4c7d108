"""Task transforms of the familiar API: each maps a task description to a narrower one.

A transform is called as ``transform(description, generator)``; ``description`` is None for the
first transform, which then starts from the whole dataset. All randomness comes from
``generator`` (seeded per task by :class:`TaskDataset`). Labels are tracked without loading
data, so only :class:`LoadData` touches the dataset's items, and only those that remain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from fastmeta.data.checks import check_positive
from fastmeta.data.familiar import MetaDataset, TaskDescription, as_meta_dataset


class _DatasetTransform:
    """Base: holds the MetaDataset a transform starts from when it comes first."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset: MetaDataset = as_meta_dataset(dataset)

    def _whole(self, codes: Iterable[int] | None = None) -> TaskDescription:
        """Every item of the classes ``codes`` (default: of every class), class by class."""
        chosen = self.dataset.classes if codes is None else list(codes)
        indices = torch.cat([self.dataset.class_indices[code] for code in chosen])
        return TaskDescription(indices, self.dataset.item_labels[indices])

    def _codes(self, labels: Iterable[Any]) -> list[int]:
        """The sorted distinct class codes of ``labels`` (each must occur in the dataset)."""
        return sorted({self.dataset.code(label) for label in labels})

    def _name(self, description: TaskDescription | None, label: int) -> Any:
        """What error messages call class ``label`` of ``description``."""
        remapped = description is not None and description.remapped
        return label if remapped else self.dataset.label(label)


def _distinct_in_order(labels: Tensor) -> Tensor:
    """The distinct labels in order of first appearance."""
    distinct, inverse = torch.unique(labels, return_inverse=True)
    first = torch.full((distinct.numel(),), labels.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(labels.numel()), reduce="amin")
    ordered: Tensor = distinct[first.argsort()]
    return ordered


def _choose_ways(available: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` of the ``available`` labels, uniformly at random, in random order."""
    if n > available.numel():
        raise ValueError(
            f"n={n} ways requested but the task has only {available.numel()} classes; lower n "
            f"to at most {available.numel()} or keep more classes"
        )
    return available[torch.randperm(available.numel(), generator=generator)[:n]]


def _shots(
    rows: Tensor, label: Any, k: int, replacement: bool, generator: torch.Generator
) -> Tensor:
    """``k`` of the item ``rows`` of class ``label``, at random (with or without replacement)."""
    if replacement:
        return rows[torch.randint(rows.numel(), (k,), generator=generator)]
    if k > rows.numel():
        raise ValueError(
            f"k={k} shots requested but class {label!r} has only {rows.numel()} items; lower k, "
            "pass replacement=True, or drop small classes with FilterLabels"
        )
    return rows[torch.randperm(rows.numel(), generator=generator)[:k]]


class FilterLabels(_DatasetTransform):
    """Keep only the items whose label is in ``labels``."""

    def __init__(self, dataset: Dataset[Any], labels: Iterable[Any]) -> None:
        super().__init__(dataset)
        self.labels = list(labels)
        if not self.labels:
            raise ValueError("FilterLabels needs at least one label to keep")
        self.codes = self._codes(self.labels)

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            return self._whole(self.codes)
        keep = torch.isin(description.labels, torch.tensor(self.codes))
        return description.select(keep.nonzero().squeeze(1))


class NWays(_DatasetTransform):
    """Keep the items of ``n`` classes drawn uniformly at random from those present."""

    def __init__(self, dataset: Dataset[Any], n: int = 2) -> None:
        super().__init__(dataset)
        check_positive(n=n)
        self.n = n

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            codes = torch.tensor(self.dataset.classes)
            return self._whole(_choose_ways(codes, self.n, generator).tolist())
        chosen = _choose_ways(_distinct_in_order(description.labels), self.n, generator)
        keep = torch.isin(description.labels, chosen)
        return description.select(keep.nonzero().squeeze(1))


class KShots(_DatasetTransform):
    """Keep ``k`` random items of every class present, class by class (first-appearance order)."""

    def __init__(self, dataset: Dataset[Any], k: int = 1, replacement: bool = False) -> None:
        super().__init__(dataset)
        check_positive(k=k)
        self.k = k
        self.replacement = replacement

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            description = self._whole()
        rows = []
        for label in _distinct_in_order(description.labels).tolist():
            of_class = (description.labels == label).nonzero().squeeze(1)
            name = self._name(description, label)
            rows.append(_shots(of_class, name, self.k, self.replacement, generator))
        return description.select(torch.cat(rows))


class FusedNWaysKShots(_DatasetTransform):
    """``FilterLabels`` (optional), ``NWays`` and ``KShots`` in one step, without the big detour.

    Draws ``n`` classes among ``filter_labels`` (default None: all labels present; an empty
    list keeps no class and is refused, as ``FilterLabels([])`` is) and ``k`` items of each; from
    scratch it touches only the chosen classes' indices.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        n: int = 2,
        k: int = 1,
        replacement: bool = False,
        filter_labels: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(dataset)
        check_positive(n=n, k=k)
        self.n = n
        self.k = k
        self.replacement = replacement
        self.filter_labels = None if filter_labels is None else list(filter_labels)
        if self.filter_labels == []:
            raise ValueError(
                "FusedNWaysKShots(filter_labels=[]) keeps no class; pass the labels to draw "
                "from, or filter_labels=None for all of them"
            )
        self.codes = None if self.filter_labels is None else self._codes(self.filter_labels)

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            available = torch.tensor(self.dataset.classes if self.codes is None else self.codes)
            rows = []
            for code in _choose_ways(available, self.n, generator).tolist():
                of_class = self.dataset.class_indices[code]
                name = self.dataset.label(code)
                rows.append(_shots(of_class, name, self.k, self.replacement, generator))
            indices = torch.cat(rows)
            return TaskDescription(indices, self.dataset.item_labels[indices])
        available = _distinct_in_order(description.labels)
        if self.codes is not None:
            available = available[torch.isin(available, torch.tensor(self.codes))]
        rows = []
        for label in _choose_ways(available, self.n, generator).tolist():
            of_class = (description.labels == label).nonzero().squeeze(1)
            name = self._name(description, label)
            rows.append(_shots(of_class, name, self.k, self.replacement, generator))
        return description.select(torch.cat(rows))


class LoadData(_DatasetTransform):
    """Mark the task's items to be read from the dataset (else the task holds their indices)."""

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            description = self._whole()
        return replace(description, load=True)


class RemapLabels(_DatasetTransform):
    """Relabel the classes ``0 .. n-1``: at random if ``shuffle``, else in order of appearance."""

    def __init__(self, dataset: Dataset[Any], shuffle: bool = True) -> None:
        super().__init__(dataset)
        self.shuffle = shuffle

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            description = self._whole()
        distinct = _distinct_in_order(description.labels)
        new = torch.arange(distinct.numel())
        if self.shuffle:
            new = torch.randperm(distinct.numel(), generator=generator)
        lookup = torch.searchsorted(distinct.sort().values, description.labels)
        return replace(description, labels=new[distinct.argsort()][lookup], remapped=True)


class ConsecutiveLabels(_DatasetTransform):
    """Order the items by label (stable), so each class's items are consecutive; after
    :class:`RemapLabels` they then come in label order ``0, 0, ..., 1, 1, ...``."""

    def __call__(
        self, description: TaskDescription | None, generator: torch.Generator
    ) -> TaskDescription:
        if description is None:
            description = self._whole()
        return description.select(torch.argsort(description.labels, stable=True))
