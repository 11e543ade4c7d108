"""learn2learn's data helpers: ``partition_task``, ``InfiniteIterator``, ``OnDeviceDataset``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset


def partition_task(
    data: Tensor, labels: Tensor, shots: int = 1
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Split a task into ``(support_x, support_y), (query_x, query_y)``: the first ``shots``
    items of each class (in data order) are support, the rest query, classes in label order.
    Every class must have the same number of items."""
    if data.size(0) != labels.size(0):
        raise ValueError(f"{data.size(0)} data rows but {labels.size(0)} labels; pass one each")
    classes, counts = torch.unique(labels, return_counts=True)
    if counts.numel() == 0 or bool((counts != counts[0]).any()):
        raise ValueError(
            f"partition_task needs the same number of items in every class; got {counts.tolist()}"
        )
    per_class = int(counts[0])
    if not 0 < shots < per_class:
        raise ValueError(
            f"shots={shots} leaves no support or no query set with {per_class} items per class"
        )
    order = torch.argsort(labels, stable=True).view(classes.numel(), per_class)
    support, query = order[:, :shots].reshape(-1), order[:, shots:].reshape(-1)
    return (data[support], labels[support]), (data[query], labels[query])


class InfiniteIterator:
    """Loops over an iterable (a DataLoader) forever, restarting it when it is exhausted."""

    def __init__(self, dataloader: Iterable[Any]) -> None:
        self.dataloader = dataloader
        self.iterator = iter(dataloader)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.dataloader)
            return next(self.iterator)


class OnDeviceDataset(TensorDataset):
    """A whole ``(x, y)`` dataset stacked into two tensors on ``device`` (pinned CPU memory
    when a GPU is available); ``transform`` is applied to each ``x`` when it is read."""

    def __init__(
        self,
        dataset: Dataset[Any],
        device: torch.device | str | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        pairs = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
        data = torch.stack([torch.as_tensor(x) for x, *_ in pairs])
        labels = torch.tensor([int(y) for _, y, *_ in pairs])
        if device is not None:
            data, labels = data.to(device), labels.to(device)
        if data.device.type == "cpu" and torch.cuda.is_available():
            data, labels = data.pin_memory(), labels.pin_memory()
        super().__init__(data, labels)
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.tensors[0][index], self.tensors[1][index]
        return (x if self.transform is None else self.transform(x)), y
