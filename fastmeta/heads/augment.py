"""Simple image augmentations for test-time fine-tuning, per image, from a seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("flip", "crop")


def check_augmentations(names: Sequence[str]) -> None:
    """Refuse a name that is not one of :data:`AUGMENTATIONS`."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}"
        )


def augment(images: Tensor, names: Sequence[str], generator: torch.Generator) -> Tensor:
    """``images [N, C, H, W]`` with ``names`` applied in order: ``flip`` mirrors each image
    left-right with probability 1/2; ``crop`` pads by an eighth of the side (reflecting) and
    crops each image back at a random offset."""
    out = images
    for name in names:
        if name == "flip":
            flip = torch.rand(len(out), generator=generator, device=out.device) < 0.5
            out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
        elif name == "crop":
            out = _random_crop(out, generator)
    return out


def _random_crop(images: Tensor, generator: torch.Generator) -> Tensor:
    height, width = images.shape[-2:]
    pad = max(1, min(height, width) // 8)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(
        0, 2 * pad + 1, (len(images), 2), generator=generator, device=images.device
    )
    crops = [
        padded[i, :, int(top) : int(top) + height, int(left) : int(left) + width]
        for i, (top, left) in enumerate(offsets.tolist())
    ]
    return torch.stack(crops)
