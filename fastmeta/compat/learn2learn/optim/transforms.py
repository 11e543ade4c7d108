"""learn2learn's optimisation transforms: factories of learnable gradient -> update maps.

Each is called with a parameter and returns the module that transforms that parameter's
gradient (see :class:`~fastmeta.compat.learn2learn.optim.ParameterUpdate`): a dense module
over the flattened gradient (``ModuleTransform``), a Kronecker-factored one
(``KroneckerTransform``, Arnold et al. 2019) or Meta-Curvature (Park & Oliva 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn


class ReshapedTransform(nn.Module):
    """``transform`` applied to the gradient viewed as ``shape``, the result viewed back."""

    def __init__(self, transform: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.transform = transform
        self.in_shape = shape

    def forward(self, grad: Tensor) -> Tensor:
        out: Tensor = self.transform(grad.reshape(self.in_shape))
        return out.reshape(grad.shape)


class ModuleTransform:
    """``module_cls(numel, numel)`` over the flattened gradient, shaped ``(1, numel)``."""

    def __init__(self, module_cls: Callable[[int, int], nn.Module]) -> None:
        self.module_cls = module_cls

    def __call__(self, parameter: Tensor) -> nn.Module:
        numel = parameter.numel()
        return ReshapedTransform(self.module_cls(numel, numel), (1, numel))


def kronecker_dims(param: Tensor) -> tuple[int, int]:
    """The (n, m) factor sizes of a parameter: a weight's shape, ``(size, 1)`` for a bias, and
    ``(in channels, kernel height * width)`` for a convolution."""
    shape = param.shape
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 1:
        return shape[0], 1
    if len(shape) == 4:
        return shape[1], shape[2] * shape[3]
    raise ValueError(
        f"Kronecker transforms take 1-, 2- or 4-dimensional parameters, got {tuple(shape)}"
    )


class KroneckerTransform:
    """``kronecker_cls(n=, m=, bias=, psd=)`` (e.g. ``KroneckerLinear``) over the gradient
    viewed as ``[-1, n, m]`` (see :func:`kronecker_dims`)."""

    def __init__(
        self, kronecker_cls: Callable[..., nn.Module], bias: bool = False, psd: bool = True
    ):
        self.kronecker_cls = kronecker_cls
        self.bias = bias
        self.psd = psd

    def __call__(self, param: Tensor) -> nn.Module:
        n, m = kronecker_dims(param)
        module = self.kronecker_cls(n=n, m=m, bias=self.bias, psd=self.psd)
        return ReshapedTransform(module, (-1, n, m))


class MetaCurvatureTransform(nn.Module):
    """Meta-Curvature: the gradient multiplied by a learned matrix along each of its dimensions
    (identity at first), times the fixed ``lr``.

    A bias is scaled entry-wise, a ``[out, in]`` weight becomes ``M_out G M_in`` and a
    convolution ``[out, in, kh, kw]`` is multiplied along its output channels, input channels
    and kernel positions.
    """

    def __init__(self, param: Tensor, lr: float = 1.0) -> None:
        super().__init__()
        self.lr = lr
        shape = param.shape
        self.dim = len(shape)
        if self.dim == 1:
            self.mc = nn.Parameter(torch.ones_like(param))
        elif self.dim in (2, 4):
            self.mc_in = nn.Parameter(torch.eye(shape[0]))
            self.mc_out = nn.Parameter(torch.eye(shape[1]))
            if self.dim == 4:
                self.mc_f = nn.Parameter(torch.eye(math.prod(shape[2:])))
        else:
            raise ValueError(
                "MetaCurvatureTransform takes 1-, 2- or 4-dimensional parameters, got "
                f"{tuple(shape)}"
            )

    def forward(self, grad: Tensor) -> Tensor:
        if self.dim == 1:
            return self.lr * self.mc * grad
        if self.dim == 2:
            return self.lr * (self.mc_in @ grad @ self.mc_out)
        flat = grad.reshape(*grad.shape[:2], -1)
        update = torch.einsum("oa,pc,abc,bi->oip", self.mc_in, self.mc_f, flat, self.mc_out)
        return self.lr * update.reshape(grad.shape)


class TransformDictionary:
    """A transform per module or parameter: ``{module_or_parameter: transform}``; parameters
    not listed get None (their raw gradient)."""

    def __init__(self, dictionary: Mapping[Any, Callable[..., nn.Module | None]]) -> None:
        self.param_to_transform: dict[Tensor, Callable[..., nn.Module | None]] = {}
        for key, transform in dictionary.items():
            if isinstance(key, nn.Module):
                self.param_to_transform.update((p, transform) for p in key.parameters())
            elif isinstance(key, nn.Parameter):
                self.param_to_transform[key] = transform
            else:
                raise ValueError("TransformDictionary keys must be Modules or Parameters")

    def __call__(self, param: Tensor, *args: Any, **kwargs: Any) -> nn.Module | None:
        transform = self.param_to_transform.get(param)
        return None if transform is None else transform(param, *args, **kwargs)
