"""learn2learn's meta-datasets on fastmeta's :class:`~fastmeta.data.familiar.MetaDataset`.

``MetaDataset(dataset, labels_to_indices=None, indices_to_labels=None)`` indexes which items
carry which label (any scalar labels, strings included); ``UnionMetaDataset`` joins datasets
with their labels renumbered apart, ``FilteredMetaDataset`` keeps some labels.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, cast

from torch.utils.data import Dataset

from fastmeta.data.familiar import MetaDataset as IndexedDataset


class MetaDataset(IndexedDataset):
    """A dataset with ``labels``, ``labels_to_indices`` and ``indices_to_labels``.

    The labels come from ``labels_to_indices`` or ``indices_to_labels`` when given (covering
    every item), else from the labels the dataset exposes or its items carry (see
    :class:`fastmeta.data.familiar.MetaDataset`). learn2learn's ``_bookkeeping_path`` cache is
    not used: the index is built from the exposed labels in well under a second.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        labels_to_indices: Mapping[Any, Sequence[int]] | None = None,
        indices_to_labels: Mapping[int, Any] | None = None,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"MetaDataset wraps a torch.utils.data.Dataset; got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.create_bookkeeping(labels_to_indices, indices_to_labels)

    def create_bookkeeping(
        self,
        labels_to_indices: Mapping[Any, Sequence[int]] | None = None,
        indices_to_labels: Mapping[int, Any] | None = None,
    ) -> None:
        """(Re)build the label index, from the dictionaries or from the dataset's labels."""
        if labels_to_indices is not None:
            indices_to_labels = {i: label for label, idx in labels_to_indices.items() for i in idx}
        labels = None
        if indices_to_labels is not None:
            size = len(cast(Any, self.dataset))
            missing = [i for i in range(size) if i not in indices_to_labels]
            if missing:
                raise ValueError(
                    f"the label dictionaries cover {size - len(missing)} of {size} items (e.g. "
                    f"not item {missing[0]}); label every item, or keep some labels with "
                    "FilteredMetaDataset"
                )
            labels = [indices_to_labels[i] for i in range(size)]
        for cached in ("labels_to_indices", "indices_to_labels"):
            self.__dict__.pop(cached, None)
        super().__init__(self.dataset, labels)


class UnionMetaDataset(MetaDataset):
    """The items of several datasets, one after the other; label ``j`` of dataset ``k`` becomes
    ``j + the number of labels of datasets 0..k-1`` (so equal labels stay apart)."""

    def __init__(self, datasets: Sequence[Dataset[Any]]) -> None:
        self.datasets = [d if isinstance(d, MetaDataset) else MetaDataset(d) for d in datasets]
        union: list[int] = []
        offset = 0
        for part in self.datasets:
            position = {label: j for j, label in enumerate(part.labels)}
            union += [offset + position[part.indices_to_labels[i]] for i in range(len(part))]
            offset += len(part.labels)
        self._ends = list(accumulate(len(part) for part in self.datasets))
        super().__init__(cast(Dataset[Any], self), indices_to_labels=dict(enumerate(union)))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} is outside this union of {len(self)} items")
        part = bisect.bisect_right(self._ends, index)
        start = self._ends[part - 1] if part else 0
        item = list(self.datasets[part][index - start])
        item[1] = self.indices_to_labels[index]
        return item


class FilteredMetaDataset(MetaDataset):
    """The items of ``dataset`` whose label is in ``labels``, label by label in that order and
    indexed ``0 ..`` again; their labels are kept."""

    def __init__(self, dataset: Dataset[Any], labels: Sequence[Any]) -> None:
        source = dataset if isinstance(dataset, MetaDataset) else MetaDataset(dataset)
        for label in labels:
            source.code(label)  # a clear error for a label no item carries
        self.to_true_indices = [i for label in labels for i in source.labels_to_indices[label]]
        kept = [source.indices_to_labels[i] for i in self.to_true_indices]
        super().__init__(cast(Dataset[Any], self), indices_to_labels=dict(enumerate(kept)))
        self.dataset = source

    def __len__(self) -> int:
        return len(self.to_true_indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.to_true_indices[index]]
