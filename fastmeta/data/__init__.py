"""Few-shot task data: an in-memory image store, seeded episode samplers and task streams.

Fast path: ``TaskSet.from_store(store, ways, shots, queries)`` draws whole meta-batches of
episodes as index arrays and gathers them in one indexing operation. Familiar path:
``TaskDataset(MetaDataset(ds), [NWays(ds, n), KShots(ds, k), LoadData(ds), ...])`` for any
map-style dataset of ``(x, y)``.
"""

from fastmeta.data.familiar import MetaDataset, TaskDataset, TaskDescription
from fastmeta.data.sampler import EpisodeIndices, EpisodeSampler
from fastmeta.data.store import ImageStore
from fastmeta.data.task_transforms import (
    ConsecutiveLabels,
    FilterLabels,
    FusedNWaysKShots,
    KShots,
    LoadData,
    NWays,
    RemapLabels,
)
from fastmeta.data.taskset import TaskSet, VariableTaskSet, gather_batch, gather_task
from fastmeta.data.variable import VariableEpisode, VariableEpisodeSampler

__all__ = [
    "ConsecutiveLabels",
    "EpisodeIndices",
    "EpisodeSampler",
    "FilterLabels",
    "FusedNWaysKShots",
    "ImageStore",
    "KShots",
    "LoadData",
    "MetaDataset",
    "NWays",
    "RemapLabels",
    "TaskDataset",
    "TaskDescription",
    "TaskSet",
    "VariableEpisode",
    "VariableEpisodeSampler",
    "VariableTaskSet",
    "gather_batch",
    "gather_task",
]
