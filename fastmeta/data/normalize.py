"""Per-channel standardisation of images, as a task transform.

Images arrive in [0, 1]; subtracting the training images' channel means and dividing by their
standard deviations puts a user's photos on the scale a freshly initialised network expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from fastmeta.tasks import TaskBatch


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each channel of uint8 ``images [N, C, H, W]``, in [0, 1]."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"need a non-empty [N, C, H, W] array; got shape {images.shape}")
    pixels = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1).astype(np.float64) / 255
    std = np.maximum(pixels.std(axis=1), 1e-3)  # a constant channel would divide by zero
    return pixels.mean(axis=1).tolist(), std.tolist()


class Normalize:
    """``(x - mean) / std`` per channel, for image tensors ``[..., C, H, W]`` and task batches."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"need one positive std per mean; got mean={mean}, std={std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def images(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, batch: TaskBatch) -> TaskBatch:
        return TaskBatch(
            self.images(batch.support_x), batch.support_y, self.images(batch.query_x),
            batch.query_y,
        )  # fmt: skip
