"""A linear probe fitted by SGD on fixed support features: the transfer baselines' test-time
head (Chen et al. 2019; :func:`fastmeta.algorithms.baseline.fit_heads`), linear or cosine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from fastmeta.algorithms.baseline import (
    FineTuning,
    cosine_scale,
    fit_heads,
    head_logits,
    initial_heads,
)


@dataclass(frozen=True)
class LinearProbe:
    """A new linear (or cosine, ``scale * cos``) head per task, fitted by ``settings``' SGD
    (100 epochs in mini-batches of 4, lr 0.01, momentum 0.9, weight decay 0.001 by default)."""

    head: Literal["linear", "cosine"] = "linear"
    settings: FineTuning = field(default_factory=FineTuning)
    scale: float | None = None

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        scale = cosine_scale(ways) if self.scale is None else self.scale
        generator = torch.Generator(device=support.device).manual_seed(self.settings.seed)
        weight, bias = initial_heads(support.shape[0], ways, support, self.head, generator)
        weight, bias = fit_heads(
            support, support_y, weight, bias, self.head, scale, self.settings, generator
        )
        with torch.no_grad():
            return head_logits(query, weight, bias, self.head, scale)
