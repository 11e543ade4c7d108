"""learn2learn's vision task transform: ``RandomClassRotation``, without torchvision."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from fastmeta.compat.learn2learn.data.task_dataset import Description
from fastmeta.compat.learn2learn.data.transforms import TaskTransform, loaded


def rotate(image: Tensor, degrees: float) -> Tensor:
    """``image [..., H, W]`` turned ``degrees`` counter-clockwise about its centre: exactly for
    multiples of 90, else by nearest-pixel sampling with zeros outside (torchvision's rule)."""
    if degrees % 90 == 0:
        return torch.rot90(image, int(degrees // 90) % 4, dims=(-2, -1))
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)
    height, width = image.shape[-2:]
    theta[0, 1] *= height / width  # sample in pixel units on non-square images
    theta[1, 0] *= width / height
    flat = image.reshape(-1, 1, height, width)
    grid = F.affine_grid(theta.expand(flat.shape[0], 2, 3), list(flat.shape), align_corners=False)
    turned = F.grid_sample(flat, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return turned.reshape(image.shape)


def _rotated(item: Any, degrees: float) -> list[Any]:
    item = loaded(item, "RandomClassRotation")
    return [rotate(item[0], degrees), *item[1:]]


class RandomClassRotation(TaskTransform):
    """Turn all images of each class of a task by one angle drawn from ``degrees`` (per class,
    with the global ``random`` state). Place it after ``LoadData``; images are tensors."""

    def __init__(self, dataset: Dataset[Any], degrees: Sequence[float]) -> None:
        super().__init__(dataset)
        if not degrees:
            raise ValueError("RandomClassRotation needs at least one angle in degrees")
        self.degrees = list(degrees)

    def __call__(self, task_description: Description | None = None) -> Description:
        if task_description is None:
            task_description = self.new_task()
        classes = self.positions(task_description).labels.tolist()
        angle = {c: random.choice(self.degrees) for c in dict.fromkeys(classes)}
        for entry, c in zip(task_description, classes, strict=True):
            entry.transforms.append(partial(_rotated, degrees=angle[c]))
        return task_description
