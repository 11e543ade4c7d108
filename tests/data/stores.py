"""Small random uint8 image stores for the data tests (no real data needed)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastmeta.data import ImageStore


def random_store(
    class_sizes: Sequence[int], side: int = 4, channels: int = 1, seed: int = 0
) -> ImageStore:
    """A store with ``class_sizes[c]`` random images of base label ``c``, labels shuffled."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(class_sizes)), torch.tensor(class_sizes))
    labels = labels[torch.randperm(labels.numel(), generator=generator)]
    images = torch.randint(
        0, 256, (labels.numel(), channels, side, side), generator=generator, dtype=torch.uint8
    )
    return ImageStore(images, labels, [f"char{c:03d}" for c in range(len(class_sizes))])
