"""learn2learn's ``data``: meta-datasets, task datasets and task transforms."""

from fastmeta.compat.learn2learn.data import transforms
from fastmeta.compat.learn2learn.data.meta_dataset import (
    FilteredMetaDataset,
    MetaDataset,
    UnionMetaDataset,
)
from fastmeta.compat.learn2learn.data.task_dataset import DataDescription, TaskDataset, Taskset
from fastmeta.compat.learn2learn.data.utils import (
    InfiniteIterator,
    OnDeviceDataset,
    partition_task,
)

__all__ = [
    "DataDescription",
    "FilteredMetaDataset",
    "InfiniteIterator",
    "MetaDataset",
    "OnDeviceDataset",
    "TaskDataset",
    "Taskset",
    "UnionMetaDataset",
    "partition_task",
    "transforms",
]
