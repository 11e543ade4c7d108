"""TaskSet: an ImageStore plus a sampler, as a seeded, random-access stream of task batches.

Batch ``b`` holds episodes ``b*B .. b*B+B-1``; since episode ``i`` depends only on (seed, i),
a run resumes from a batch number and :meth:`TaskSet.evaluation` gives the same episodes at any
batch size. Images are gathered in one indexing operation per batch, on the store's device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count as count_from

import torch

from fastmeta.data.checks import check_positive
from fastmeta.data.sampler import EpisodeIndices, EpisodeSampler
from fastmeta.data.store import ImageStore
from fastmeta.data.variable import VariableEpisode, VariableEpisodeSampler
from fastmeta.tasks import Task, TaskBatch


def gather_batch(store: ImageStore, episodes: EpisodeIndices) -> TaskBatch:
    """The images of sampled episodes as a TaskBatch (labels ``0..ways-1``, class by class,
    with the store class of each label as ``classes``)."""
    classes = episodes.classes.to(store.images.device)
    positions = episodes.positions.to(store.images.device)
    batch, ways, per_class = positions.shape
    shots = episodes.shots
    images = store.class_image_indices(classes.unsqueeze(2), positions)
    flat = torch.cat([images[:, :, :shots].reshape(-1), images[:, :, shots:].reshape(-1)])
    flat_classes = None
    if store.has_rotations:
        expanded = classes.unsqueeze(2).expand_as(positions)
        flat_classes = torch.cat(
            [expanded[:, :, :shots].reshape(-1), expanded[:, :, shots:].reshape(-1)]
        )
    pixels = store.gather(flat, flat_classes)
    split = batch * ways * shots
    labels = torch.arange(ways, device=positions.device)
    return TaskBatch(
        pixels[:split].view(batch, ways * shots, *store.image_shape),
        labels.repeat_interleave(shots).repeat(batch, 1),
        pixels[split:].view(batch, ways * (per_class - shots), *store.image_shape),
        labels.repeat_interleave(per_class - shots).repeat(batch, 1),
        classes,
    )


def gather_task(store: ImageStore, episode: VariableEpisode) -> Task:
    """The images of one variable-way, variable-shot episode as a Task (with its store classes)."""
    device = store.images.device
    classes = episode.classes.to(device)
    parts = []
    for labels, positions in (
        (episode.support_labels, episode.support_positions),
        (episode.query_labels, episode.query_positions),
    ):
        labels, positions = labels.to(device), positions.to(device)
        picked = classes[labels]
        parts.append((store.gather(store.class_image_indices(picked, positions), picked), labels))
    (support_x, support_y), (query_x, query_y) = parts
    return Task(support_x, support_y, query_x, query_y, classes)


class TaskSet:
    """Seeded stream of ``TaskBatch``: ``batch(b)`` holds episodes ``b*batch_size`` onward.

    Args:
        store: the images to draw from.
        sampler: an :class:`EpisodeSampler` over ``store``'s classes.
        batch_size: episodes per batch (the meta-batch size).
        transform: optional function applied to every batch (e.g. normalisation).
    """

    def __init__(
        self,
        store: ImageStore,
        sampler: EpisodeSampler,
        batch_size: int = 32,
        transform: Callable[[TaskBatch], TaskBatch] | None = None,
    ) -> None:
        check_positive(batch_size=batch_size)
        check_sampler_fits(sampler, store)
        self.store = store
        self.sampler = sampler
        self.batch_size = batch_size
        self.transform = transform

    @classmethod
    def from_store(
        cls,
        store: ImageStore,
        ways: int,
        shots: int,
        queries: int,
        batch_size: int = 32,
        seed: int = 0,
        transform: Callable[[TaskBatch], TaskBatch] | None = None,
    ) -> TaskSet:
        """A TaskSet of ``ways``-way ``shots``-shot episodes with ``queries`` queries per class."""
        sampler = EpisodeSampler(
            store.class_sizes, ways, shots, queries, seed, class_names=store.class_names
        )
        return cls(store, sampler, batch_size, transform)

    def episodes(self, start: int, count: int) -> TaskBatch:
        """Episodes ``start .. start+count-1`` as one batch."""
        tasks = gather_batch(self.store, self.sampler.sample(start, count))
        return tasks if self.transform is None else self.transform(tasks)

    def batch(self, index: int) -> TaskBatch:
        """Batch ``index``: episodes ``index*batch_size .. (index+1)*batch_size-1``."""
        return self.episodes(index * self.batch_size, self.batch_size)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[TaskBatch]:
        """Batches ``start, start+1, ...`` up to ``stop`` (endless when None): resume from here."""
        indices = count_from(start) if stop is None else range(start, stop)
        return (self.batch(index) for index in indices)

    def __iter__(self) -> Iterator[TaskBatch]:
        return self.batches()

    def evaluation(self, num_episodes: int) -> Iterator[TaskBatch]:
        """The fixed set of episodes ``0 .. num_episodes-1`` in batches (the last may be smaller).

        The episodes are the same whatever ``batch_size`` is; use a dedicated seed for them.
        """
        check_positive(num_episodes=num_episodes)
        for start in range(0, num_episodes, self.batch_size):
            yield self.episodes(start, min(self.batch_size, num_episodes - start))


class VariableTaskSet:
    """Seeded stream of variable-way, variable-shot :class:`Task` (Meta-Dataset episodes)."""

    def __init__(
        self,
        store: ImageStore,
        sampler: VariableEpisodeSampler,
        transform: Callable[[Task], Task] | None = None,
    ) -> None:
        check_sampler_fits(sampler, store)
        self.store = store
        self.sampler = sampler
        self.transform = transform

    @classmethod
    def from_store(
        cls,
        store: ImageStore,
        seed: int = 0,
        transform: Callable[[Task], Task] | None = None,
    ) -> VariableTaskSet:
        """A VariableTaskSet with the paper's settings (5-50 ways, up to 10 queries per class)."""
        sampler = VariableEpisodeSampler(store.class_sizes, seed, class_names=store.class_names)
        return cls(store, sampler, transform)

    def task(self, index: int) -> Task:
        """Episode ``index`` of the stream as a Task."""
        task = gather_task(self.store, self.sampler.sample(index))
        return task if self.transform is None else self.transform(task)

    def tasks(self, start: int = 0, stop: int | None = None) -> Iterator[Task]:
        """Tasks ``start, start+1, ...`` up to ``stop`` (endless when None)."""
        indices = count_from(start) if stop is None else range(start, stop)
        return (self.task(index) for index in indices)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()


def check_sampler_fits(sampler: EpisodeSampler | VariableEpisodeSampler, store: ImageStore) -> None:
    """Refuse a sampler built for another store (another number of classes)."""
    if sampler.class_sizes.numel() != store.num_classes:
        raise ValueError(
            f"the sampler draws from {sampler.class_sizes.numel()} classes but the store has "
            f"{store.num_classes}; build the sampler from store.class_sizes"
        )
