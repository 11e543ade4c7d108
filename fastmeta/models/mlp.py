"""Fully connected network (the MAML sine-regression model is ``MLP(1, [40, 40], 1)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn


class MLP(nn.Module):
    """``in -> hidden... -> out`` with ReLU between layers; the last layer is ``head``.

    ``init="maml"`` draws weights from a normal with std 0.01 truncated at two std and zeroes the
    biases, as MAML's reference code does; with PyTorch's default initialisation, sine models
    tested with 10 inner steps diverged on rare large-amplitude tasks (see docs/RESULTS.md).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        init: Literal["torch", "maml"] = "torch",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)
        if init == "maml":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
                    nn.init.zeros_(module.bias)
        elif init != "torch":
            raise ValueError(f"init must be 'torch' or 'maml', got {init!r}")

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.body(x))
        return out
