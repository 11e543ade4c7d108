"""Nearest class mean (Prototypical Networks' classifier, and the frozen-feature baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from fastmeta.algorithms.protonet import prototype_logits


@dataclass(frozen=True)
class Prototypes:
    """Logits by squared Euclidean distance (``"euclidean"``) or cosine similarity
    (``"cosine"``) to the support class means, times ``scale``."""

    distance: Literal["euclidean", "cosine"] = "euclidean"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be euclidean or cosine, got {self.distance!r}")

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        distance = "cosine" if self.distance == "cosine" else "squared_euclidean"
        return prototype_logits(support, support_y, query, ways, distance, self.scale)
