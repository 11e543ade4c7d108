"""learn2learn's ``DifferentiableSGD``: ``p <- p - lr * g`` in place of a module's parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fastmeta.compat.learn2learn.utils import update_module


class DifferentiableSGD(nn.Module):
    """Applies one SGD step to a module differentiably (the parameters become functions of the
    old ones and of the gradients); ``gradients`` default to each parameter's ``.grad``."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr

    def forward(self, module: nn.Module, gradients: Sequence[Tensor | None] | None = None) -> None:
        if gradients is None:
            gradients = [p.grad for p in module.parameters()]
        update_module(module, [None if g is None else g.mul(-self.lr) for g in gradients])
