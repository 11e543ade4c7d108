"""learn2learn's ``Taskset`` (alias ``TaskDataset``): tasks from task transforms, lazily.

A task description is a list of :class:`DataDescription` (an item index plus the functions
that turn it into data, in order); the transforms narrow and annotate it, then each item's
functions are applied and the results collated. As in learn2learn, randomness comes from
Python's global ``random`` module (``random.seed`` reproduces a run), an endless taskset
(``num_tasks=-1``) draws a new task on every access and has length 1, and a fixed pool draws
each task's description once, on first access. fastmeta's own
:class:`~fastmeta.data.familiar.TaskDataset` instead derives task ``i`` from an explicit seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from itertools import count
from typing import Any

from torch.utils.data import Dataset, default_collate

from fastmeta.compat.learn2learn.data.meta_dataset import MetaDataset

Item = Callable[[Any], Any]


class DataDescription:
    """One item of a task: its dataset ``index``, the ``transforms`` that load and change it,
    and its ``label`` once :class:`~fastmeta.compat.learn2learn.data.transforms.RemapLabels`
    gave it one (None: the dataset's own)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.transforms: list[Item] = []
        self.label: int | None = None

    def copy(self) -> DataDescription:
        """An independent copy (the list of transforms is copied, not shared)."""
        twin = DataDescription(self.index)
        twin.transforms = list(self.transforms)
        twin.label = self.label
        return twin


Description = list[DataDescription]
TaskTransform = Callable[[Description | None], Description]


class Taskset:
    """Tasks made by ``task_transforms`` (a list, or one callable) from ``dataset``.

    Args:
        dataset: a MetaDataset (any other torch dataset is wrapped in one).
        task_transforms: applied in order, the first to None (the whole dataset).
        num_tasks: ``-1`` for endless new tasks, ``n > 0`` for a fixed pool of ``n``.
        task_collate: turns the list of items into the task (default ``default_collate``).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        task_transforms: Sequence[TaskTransform] | TaskTransform | None = None,
        num_tasks: int = -1,
        task_collate: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < -1:
            raise ValueError(f"num_tasks must be -1 (endless) or positive, got {num_tasks!r}")
        if num_tasks == 0:
            raise ValueError("num_tasks must be -1 (endless) or positive, got 0")
        self.dataset = dataset if isinstance(dataset, MetaDataset) else MetaDataset(dataset)
        self.task_transforms = [] if task_transforms is None else task_transforms
        self.num_tasks = num_tasks
        self.task_collate = task_collate or default_collate
        self.sampled_descriptions: dict[int, Description] = {}

    def sample_task_description(self) -> Description:
        """A new task description, drawn with the global ``random`` state."""
        if callable(self.task_transforms):
            return self.task_transforms(None)
        description = None
        for transform in self.task_transforms:
            description = transform(description)
        if description is None:
            description = [DataDescription(i) for i in range(len(self.dataset))]
        return description

    def get_task(self, task_description: Description) -> Any:
        """The data of a description: each item's functions applied, then collated."""
        items = []
        for entry in task_description:
            data: Any = entry.index
            for transform in entry.transforms:
                data = transform(data)
            items.append(data)
        return self.task_collate(items)

    def sample(self) -> Any:
        """A random task (a new one when endless, one of the pool otherwise)."""
        return self[random.randint(0, len(self) - 1)]

    def __len__(self) -> int:
        return 1 if self.num_tasks == -1 else self.num_tasks

    def __getitem__(self, index: int) -> Any:
        if self.num_tasks == -1:
            return self.get_task(self.sample_task_description())
        if not 0 <= index < self.num_tasks:
            raise IndexError(f"task {index} is outside this pool of {self.num_tasks} tasks")
        if index not in self.sampled_descriptions:
            self.sampled_descriptions[index] = self.sample_task_description()
        return self.get_task(self.sampled_descriptions[index])

    def __iter__(self) -> Iterator[Any]:
        indices = count() if self.num_tasks == -1 else range(self.num_tasks)
        return (self[index] for index in indices)


TaskDataset = Taskset
