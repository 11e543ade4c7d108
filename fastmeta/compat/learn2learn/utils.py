"""learn2learn's module utilities: differentiable copies and updates of whole modules.

These are the module-surgery tools learn2learn users call directly: ``clone_module`` (a copy
whose parameters are differentiable functions of the original's), ``update_module`` (``p <- p +
u`` in place of each parameter, keeping the graph) and ``detach_module``. The algorithms of this
package do not need them (their learners hold the fast weights as a dictionary, see
:class:`fastmeta.algorithms.maml.Learner`); ``learner.module`` is built with :func:`module_view`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

__all__ = [
    "accuracy",
    "clone_distribution",
    "clone_module",
    "clone_parameters",
    "detach_distribution",
    "detach_module",
    "magic_box",
    "update_module",
]

ModuleT = TypeVar("ModuleT", bound=nn.Module)
Replace = Callable[[Tensor], Tensor]
Memo = dict[Tensor, Tensor]  # keyed by the tensor itself (hashed by identity, kept alive)


def module_view(
    module: ModuleT, parameter: Replace, buffer: Replace, memo: Memo | None = None
) -> ModuleT:
    """A structural copy of ``module``: new module objects all the way down (a submodule
    reached by two paths is copied once), sharing every attribute with the original except
    their parameters and buffers, each replaced by ``parameter(t)`` / ``buffer(t)``. A tensor
    reached twice (tied weights, or another call given the same ``memo``: original ->
    replacement) is replaced once. The original module is never changed."""
    memo = {} if memo is None else memo
    copies: dict[int, nn.Module] = {}

    def swap(tensor: Tensor | None, replace: Replace) -> Tensor | None:
        if tensor is None:
            return None
        if tensor not in memo:
            memo[tensor] = replace(tensor)
        return memo[tensor]

    def copy_of(original: nn.Module) -> nn.Module:
        if id(original) in copies:
            return copies[id(original)]
        clone = original.__new__(type(original))
        copies[id(original)] = clone
        clone.__dict__ = {
            **original.__dict__,
            "_parameters": {k: swap(p, parameter) for k, p in original._parameters.items()},
            "_buffers": {k: swap(b, buffer) for k, b in original._buffers.items()},
            "_modules": {k: m if m is None else copy_of(m) for k, m in original._modules.items()},
        }
        if isinstance(clone, nn.RNNBase):
            clone._init_flat_weights()  # the fused weight list must point at the new tensors
        return clone

    view: ModuleT = copy_of(module)  # type: ignore[assignment]  # same type as module
    return view


def clone_module(module: ModuleT, memo: Memo | None = None) -> ModuleT:
    """A copy of ``module`` whose parameters are ``torch.clone``s of the original's, so a loss
    of the copy back-propagates into the original. Buffers that require grad are cloned too;
    the others (BatchNorm's running statistics) are shared, as in learn2learn. A tensor already
    in ``memo`` (original -> clone, filled by earlier calls) is not cloned again."""
    return module_view(module, Tensor.clone, _clone_if_differentiable, memo)


def _clone_if_differentiable(tensor: Tensor) -> Tensor:
    return tensor.clone() if tensor.requires_grad else tensor


def update_module(
    module: ModuleT,
    updates: Sequence[Tensor | None] | None = None,
    memo: Memo | None = None,
) -> ModuleT:
    """``p <- p + u`` for every parameter ``p`` of ``module`` (in place of the tensor, so the
    graph is kept), with ``updates`` in ``module.parameters()`` order (None: leave one as it is)
    or, when ``updates`` is None, the tensor each parameter holds in its ``update`` attribute.
    Buffers with an ``update`` attribute are updated the same way. Returns ``module``."""
    if updates is not None:
        params = list(module.parameters())
        if len(updates) != len(params):
            raise ValueError(
                f"update_module: {len(updates)} updates for {len(params)} parameters; pass one "
                "per tensor of module.parameters(), None to leave one unchanged"
            )
        for param, change in zip(params, updates, strict=True):
            param.update = change  # type: ignore[attr-defined]  # learn2learn's convention
    done: Memo = {} if memo is None else memo
    for sub in module.modules():
        stores: tuple[dict[str, Any], ...] = (sub._parameters, sub._buffers)
        for store in stores:
            for key, tensor in store.items():
                if tensor is None:
                    continue
                if tensor not in done:
                    change = getattr(tensor, "update", None)
                    if change is None:
                        continue
                    done[tensor] = tensor + change
                    tensor.update = None
                store[key] = done[tensor]
        if isinstance(sub, nn.RNNBase):
            sub._init_flat_weights()
    return module


def detach_module(module: nn.Module, keep_requires_grad: bool = False) -> None:
    """Detach every parameter (and every buffer that requires grad) of ``module`` from its graph,
    in place; they then require no grad unless ``keep_requires_grad``."""
    for sub in module.modules():
        for tensor in sub._parameters.values():
            if tensor is not None:
                requires_grad = tensor.requires_grad
                tensor.detach_()
                tensor.requires_grad_(keep_requires_grad and requires_grad)
        for key, buffer in sub._buffers.items():
            if buffer is not None and buffer.requires_grad:
                sub._buffers[key] = buffer.detach_().requires_grad_(keep_requires_grad)


def clone_parameters(param_list: Iterable[Tensor]) -> list[Tensor]:
    """``torch.clone`` of each tensor (differentiable)."""
    return [p.clone() for p in param_list]


def magic_box(x: Any) -> Any:
    """DiCE's magic box (Foerster et al. 2018): evaluates to 1, its gradient is that of ``x``."""
    if isinstance(x, Tensor):
        return torch.exp(x - x.detach())
    return x


def clone_distribution(dist: Any) -> Any:
    """A copy of a ``torch.distributions`` object whose differentiable tensors are clones."""
    clone = copy.copy(dist)
    for key, item in vars(dist).items():
        if isinstance(item, Tensor) and item.requires_grad:
            setattr(clone, key, item.clone())
        elif isinstance(item, nn.Module):
            setattr(clone, key, clone_module(item))
        elif isinstance(item, torch.distributions.Distribution):
            setattr(clone, key, clone_distribution(item))
    return clone


def detach_distribution(dist: Any) -> Any:
    """``dist`` with its differentiable tensors detached (in place); returns it."""
    for key, item in vars(dist).items():
        if isinstance(item, Tensor) and item.requires_grad:
            setattr(dist, key, item.detach())
        elif isinstance(item, nn.Module):
            detach_module(item)
        elif isinstance(item, torch.distributions.Distribution):
            detach_distribution(item)
    return dist


def accuracy(preds: Tensor, targets: Tensor) -> Tensor:
    """The fraction of rows of ``preds`` whose arg-max equals ``targets``."""
    return (preds.argmax(dim=1).long() == targets.long()).sum().float() / preds.size(0)
