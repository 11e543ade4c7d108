"""Episodes over frozen features, drawn exactly as over the images.

A :class:`FeatureStore` pairs an :class:`~fastmeta.data.store.ImageStore` with its features
(:func:`fastmeta.features.extract.embed_store`'s layout: one block of rows per used rotation).
A :class:`FeatureTaskSet` uses the same :class:`~fastmeta.data.sampler.EpisodeSampler` as
:class:`~fastmeta.data.taskset.TaskSet`, so with the same seed episode ``i`` has the same
classes and images, and its ``support_x [B, S, D]`` are their features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count as count_from

import torch
from torch import Tensor

from fastmeta.data.checks import check_positive
from fastmeta.data.sampler import EpisodeIndices, EpisodeSampler
from fastmeta.data.store import ImageStore
from fastmeta.features.extract import used_turns
from fastmeta.tasks import TaskBatch


@dataclass(frozen=True)
class FeatureStore:
    """``features [T * N, D]`` of the ``N`` images of ``store`` at its ``T`` used rotations."""

    features: Tensor
    store: ImageStore

    def __post_init__(self) -> None:
        rows = self.store.images.shape[0] * len(used_turns(self.store))
        if self.features.dim() != 2 or self.features.shape[0] != rows:
            raise ValueError(
                f"need features [{rows}, D] for the store's images and rotations; got "
                f"{tuple(self.features.shape)}"
            )

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def rows(self, image_indices: Tensor, classes: Tensor) -> Tensor:
        """Features of ``image_indices`` seen at the rotation of their ``classes`` (same
        shapes), as ``[*shape, D]``."""
        turns = used_turns(self.store)
        slot = torch.zeros(4, dtype=torch.long)
        slot[turns] = torch.arange(len(turns))
        offsets = slot[self.store.class_turns.cpu()] * self.store.images.shape[0]
        flat = image_indices.reshape(-1).cpu() + offsets[classes.reshape(-1).cpu()]
        picked = self.features.index_select(0, flat)
        return picked.reshape(*image_indices.shape, self.dim)


def gather_features(features: FeatureStore, episodes: EpisodeIndices) -> TaskBatch:
    """The features of sampled episodes as a TaskBatch laid out as
    :func:`fastmeta.data.taskset.gather_batch` lays out images."""
    classes, positions, shots = episodes.classes.cpu(), episodes.positions.cpu(), episodes.shots
    batch, ways, per_class = positions.shape
    store = features.store
    indices = store.class_image_indices(
        classes.unsqueeze(2).to(store.images.device), positions.to(store.images.device)
    ).cpu()
    rows = features.rows(indices, classes.unsqueeze(2).expand_as(positions))
    labels = torch.arange(ways)
    return TaskBatch(
        rows[:, :, :shots].reshape(batch, ways * shots, -1),
        labels.repeat_interleave(shots).repeat(batch, 1),
        rows[:, :, shots:].reshape(batch, ways * (per_class - shots), -1),
        labels.repeat_interleave(per_class - shots).repeat(batch, 1),
        classes,
    )


class FeatureTaskSet:
    """A seeded stream of feature episodes with :class:`~fastmeta.data.taskset.TaskSet`'s API
    (``episodes``, ``batch``, ``batches``, ``evaluation``)."""

    def __init__(
        self, features: FeatureStore, sampler: EpisodeSampler, batch_size: int = 32
    ) -> None:
        check_positive(batch_size=batch_size)
        self.features = features
        self.sampler = sampler
        self.batch_size = batch_size

    @classmethod
    def from_features(
        cls, features: FeatureStore, ways: int, shots: int, queries: int, batch_size: int = 32,
        seed: int = 0,
    ) -> FeatureTaskSet:  # fmt: skip
        """``ways``-way ``shots``-shot episodes with ``queries`` queries per class: the same
        episodes as ``TaskSet.from_store(features.store, ways, shots, queries, ..., seed)``."""
        store = features.store
        sampler = EpisodeSampler(
            store.class_sizes.cpu(), ways, shots, queries, seed, class_names=store.class_names
        )
        return cls(features, sampler, batch_size)

    def episodes(self, start: int, count: int) -> TaskBatch:
        """Episodes ``start .. start+count-1`` as one batch."""
        return gather_features(self.features, self.sampler.sample(start, count))

    def batch(self, index: int) -> TaskBatch:
        """Batch ``index``: episodes ``index*batch_size .. (index+1)*batch_size-1``."""
        return self.episodes(index * self.batch_size, self.batch_size)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[TaskBatch]:
        """Batches ``start, start+1, ...`` up to ``stop`` (endless when None)."""
        indices = count_from(start) if stop is None else range(start, stop)
        return (self.batch(index) for index in indices)

    def evaluation(self, num_episodes: int) -> Iterator[TaskBatch]:
        """The fixed episodes ``0 .. num_episodes-1`` in batches (the last may be smaller)."""
        check_positive(num_episodes=num_episodes)
        for start in range(0, num_episodes, self.batch_size):
            yield self.episodes(start, min(self.batch_size, num_episodes - start))
