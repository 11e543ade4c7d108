"""learn2learn's ``get_tasksets``: train / validation / test tasksets of a benchmark in one call,
sampled by fastmeta's episode sampler from a decoded image store.

``get_tasksets("mini-imagenet", train_ways=5, train_samples=10)`` reads
``<root>/miniimagenet`` with :func:`fastmeta.datasets.load_split` (the folder layout of
docs/DATASETS.md) and returns ``BenchmarkTasksets(train, validation, test)``; each taskset's
``sample()`` gives ``(X, y)`` as learn2learn's do: ``ways * samples`` images, each class's
consecutive, labels ``0 .. ways-1``. Where learn2learn differs:

- Omniglot uses MAML's split of 1100 / 100 / 423 characters, each at four rotations as classes,
  fixed by fastmeta's hashed order; learn2learn shuffles the characters with the global
  ``random`` state and rotates each class of a task at random, and its transforms draw the
  validation and test tasks from all 1,623 characters, training ones included;
- images are floats in [0, 1] for every benchmark (learn2learn's mini-ImageNet gives 0-255);
  ``data_augmentation`` may be None or ``"normalize"`` (the same images).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from fastmeta.data import EpisodeSampler, ImageStore, gather_batch
from fastmeta.datasets import load_split

# learn2learn's benchmark name -> (fastmeta's dataset name, its loader options)
_BENCHMARKS: dict[str, tuple[str, dict[str, Any]]] = {
    "omniglot": ("omniglot", {"scheme": "maml"}),
    "mini-imagenet": ("miniimagenet", {}),
    "tiered-imagenet": ("tieredimagenet", {}),
    "fc100": ("fc100", {}),
    "cifarfs": ("cifar-fs", {}),
    "cub": ("cub", {}),
}
_OPTIONS = ("data_augmentation", "download", "cache_dir")
_AUGMENTATIONS = (None, "normalize")


class BenchmarkTasksets(NamedTuple):
    train: EpisodeTaskset
    validation: EpisodeTaskset
    test: EpisodeTaskset


def list_tasksets() -> list[str]:
    """The benchmark names :func:`get_tasksets` knows."""
    return list(_BENCHMARKS)


class EpisodeTaskset:
    """A learn2learn-shaped taskset over an :class:`~fastmeta.data.ImageStore`.

    ``sample()`` and ``taskset[i]`` give ``(X, y)``: ``X [ways * samples, C, H, W]`` float
    images, ``y`` their labels ``0 .. ways-1``, class by class. Like learn2learn's tasksets it
    follows the global ``random`` state: endless (``num_tasks=-1``, length 1) it draws a new
    task on every access; a pool of ``num_tasks`` fixes task ``i``. ``store`` is the image
    store, for fastmeta's batched :class:`~fastmeta.data.TaskSet`.
    """

    def __init__(
        self,
        store: ImageStore,
        ways: int,
        samples: int,
        num_tasks: int = -1,
    ) -> None:
        if isinstance(num_tasks, bool) or num_tasks < -1 or num_tasks == 0:
            raise ValueError(f"num_tasks must be -1 (endless) or positive, got {num_tasks!r}")
        self.store = store
        self.num_tasks = num_tasks
        self.sampler = EpisodeSampler(
            store.class_sizes, ways, samples, 0, random.getrandbits(62), store.class_names
        )

    def task(self, episode: int) -> tuple[Tensor, Tensor]:
        """Episode ``episode`` of this taskset's stream as ``(X, y)``."""
        batch = gather_batch(self.store, self.sampler.sample(episode, 1))
        return batch.support_x[0], batch.support_y[0]

    def sample(self) -> tuple[Tensor, Tensor]:
        """A random task (a new one when endless, one of the pool otherwise)."""
        return self[random.randint(0, len(self) - 1)]

    def __len__(self) -> int:
        return 1 if self.num_tasks == -1 else self.num_tasks

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self.num_tasks == -1:
            return self.task(random.getrandbits(62))
        if not 0 <= index < self.num_tasks:
            raise IndexError(f"task {index} is outside this pool of {self.num_tasks} tasks")
        return self.task(index)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices = count() if self.num_tasks == -1 else range(self.num_tasks)
        return (self[index] for index in indices)


@lru_cache(maxsize=3)
def _split(
    dataset: str, split: str, folder: Path, settings: tuple[tuple[str, Any], ...]
) -> ImageStore:
    """One split of a dataset, kept in memory for the process (the last three loaded), so
    building a benchmark's tasksets again reads nothing."""
    return load_split(dataset, split, folder, **dict(settings))


def get_tasksets(
    name: str,
    train_ways: int = 5,
    train_samples: int = 10,
    test_ways: int = 5,
    test_samples: int = 10,
    num_tasks: int = -1,
    root: str = "~/data",
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> BenchmarkTasksets:
    """The train, validation and test tasksets of benchmark ``name`` (see :func:`list_tasksets`).

    Args:
        name: the benchmark.
        train_ways, train_samples: classes per training task and images per class.
        test_ways, test_samples: the same for validation and test tasks.
        num_tasks: ``-1`` for endless tasksets, else the size of each pool.
        root: the folder holding fastmeta's dataset folders (``<root>/omniglot``, ...).
        device: where the images are kept and the tasks gathered (default the CPU).
        **kwargs: ``data_augmentation`` (None or ``"normalize"``), ``download`` and
            ``cache_dir`` (given to the loader).
    """
    if name not in _BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: choose one of {', '.join(_BENCHMARKS)}")
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"get_tasksets got unknown argument(s) {unknown}; it takes {_OPTIONS}")
    augmentation = kwargs.pop("data_augmentation", None)
    if augmentation not in _AUGMENTATIONS:
        raise ValueError(
            f"data_augmentation={augmentation!r} is not available here; use None or 'normalize' "
            "(images are floats in [0, 1] either way)"
        )
    dataset, options = _BENCHMARKS[name]
    folder = Path(root).expanduser() / dataset
    settings = tuple(sorted({**options, **kwargs}.items()))
    stores = {split: _split(dataset, split, folder, settings) for split in ("train", "val", "test")}
    if device is not None:
        stores = {split: store.to(device) for split, store in stores.items()}
    return BenchmarkTasksets(
        EpisodeTaskset(stores["train"], train_ways, train_samples, num_tasks),
        EpisodeTaskset(stores["val"], test_ways, test_samples, num_tasks),
        EpisodeTaskset(stores["test"], test_ways, test_samples, num_tasks),
    )
