"""The meta-batches and networks every method is timed on.

Omniglot-shaped synthetic tasks (5-way 1-shot, 1x28x28 images in [0, 1]) or real Omniglot
episodes from ``$FASTMETA_DATA`` (Vinyals training split, fastmeta's TaskSet), and the 4-block
conv net with BatchNorm of MAML's Omniglot experiments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from fastmeta.models import Conv4
from fastmeta.tasks import TaskBatch

WAYS, SHOTS, SIDE = 5, 1, 28


@dataclass(frozen=True)
class MamlConfig:
    """One MAML measurement: derivative order, inner steps, meta-batch, queries per class, data."""

    first_order: bool
    steps: int
    meta_batch: int
    queries: int
    data: str = "synthetic"
    inner_lr: float = 0.4

    @property
    def label(self) -> str:
        order = "1st" if self.first_order else "2nd"
        return (
            f"{order} order, {self.steps} step{'s' if self.steps > 1 else ''}, "
            f"meta-batch {self.meta_batch}, {self.queries}q, {self.data}"
        )


def synthetic_batch(meta_batch: int, queries: int, seed: int = 0) -> TaskBatch:
    """Random Omniglot-shaped 5-way 1-shot tasks with ``queries`` queries per class."""
    generator = torch.Generator().manual_seed(seed)

    def part(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.rand(meta_batch, WAYS * per_class, 1, SIDE, SIDE, generator=generator)
        labels = torch.arange(WAYS).repeat_interleave(per_class).repeat(meta_batch, 1)
        return images, labels

    return TaskBatch(*part(SHOTS), *part(queries))


def omniglot_batch(meta_batch: int, queries: int, seed: int = 0) -> TaskBatch | None:
    """A real Omniglot meta-batch (training split) when ``$FASTMETA_DATA`` is set, else None."""
    if not os.environ.get("FASTMETA_DATA"):
        return None
    from fastmeta.data import TaskSet
    from fastmeta.datasets.omniglot import load_omniglot

    store = load_omniglot("train")
    return TaskSet.from_store(store, WAYS, SHOTS, queries, meta_batch, seed=seed).batch(0)


def batch_for(config: MamlConfig, device: torch.device) -> TaskBatch | None:
    """The meta-batch of ``config`` on ``device`` (None: real data asked for but not available)."""
    if config.data == "omniglot":
        batch = omniglot_batch(config.meta_batch, config.queries)
    else:
        batch = synthetic_batch(config.meta_batch, config.queries)
    return None if batch is None else batch.to(device)


def conv4(seed: int = 0, out_features: int | None = WAYS, downsample: str = "stride") -> nn.Module:
    """MAML's Omniglot network (64 filters, BatchNorm with batch statistics), seeded weights."""
    torch.manual_seed(seed)
    return Conv4(1, out_features, hidden=64, downsample=downsample)  # type: ignore[arg-type]
