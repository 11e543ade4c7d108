"""learn2learn's ``LearnableOptimizer``: SGD through a learnable transform (meta-descent)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from fastmeta.compat.learn2learn.utils import update_module


class LearnableOptimizer(nn.Module):
    """Updates ``model`` with ``p <- p - lr * transform_p(grad_p)``, differentiably: the next
    backward through the model also reaches the transforms' parameters, which another
    optimizer then trains (hypergradient descent and its relatives).

    Args:
        model: the module to update (held, not registered: ``parameters()`` are the transforms').
        transform: called with each parameter, returns the module transforming its gradient.
        lr: the step size.
    """

    def __init__(
        self, model: nn.Module, transform: Callable[[Tensor], nn.Module], lr: float = 1.0
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.info = {"model": model}
        self.transforms = nn.ModuleList(transform(p) for _, p in model.named_parameters())
        self.lr = lr

    def step(self, closure: Callable[[], Any] | None = None) -> None:
        """Take the step from the gradients in each parameter's ``.grad``."""
        model = self.info["model"]
        with warnings.catch_warnings():  # .grad of a non-leaf tensor warns; it is retained
            warnings.simplefilter("ignore")
            for param, transform in zip(model.parameters(), self.transforms, strict=True):
                if param.grad is not None:
                    update = -self.lr * transform(param.grad.detach())
                    param.detach_()
                    param.requires_grad_(False)
                    param.update = update  # type: ignore[attr-defined]  # see update_module
            update_module(model)
            for param in model.parameters():
                param.retain_grad()

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Reset the model's gradients to zeros (new tensors: the step's graph stays intact)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for param in self.info["model"].parameters():
                if param.grad is not None:
                    param.grad = torch.zeros_like(param.data)
