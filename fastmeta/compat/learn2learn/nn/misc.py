"""learn2learn's small modules and helpers: Lambda, Flatten, Scale, freeze, unfreeze."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class Lambda(nn.Module):
    """A module whose forward is ``lmb(*args, **kwargs)``."""

    def __init__(self, lmb: Callable[..., Any]) -> None:
        super().__init__()
        self.lmb = lmb

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.lmb(*args, **kwargs)


class Flatten(nn.Module):
    """``[batch, ...] -> [batch, -1]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.size(0), -1)


class Scale(nn.Module):
    """``x * alpha`` with a learnable ``alpha`` of the given ``shape`` (default one scalar),
    initialised to ``alpha``."""

    def __init__(self, shape: int | tuple[int, ...] | None = None, alpha: float = 1.0) -> None:
        super().__init__()
        size = (1,) if shape is None else (shape,) if isinstance(shape, int) else tuple(shape)
        self.alpha = nn.Parameter(torch.full(size, float(alpha)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.alpha


def freeze(module: ModuleT) -> ModuleT:
    """Detach every parameter of ``module`` and stop it requiring grad, in place."""
    for param in module.parameters():
        param.detach_()
        param.requires_grad_(False)
    return module


def unfreeze(module: ModuleT) -> ModuleT:
    """Make every parameter of ``module`` require grad again, in place."""
    for param in module.parameters():
        param.requires_grad_(True)
    return module
