"""Conjugate gradient over parameter dictionaries, and Hessian-vector products.

iMAML's meta-gradient solves ``(I + H / lambda) x = g`` without ever forming the Hessian ``H``:
conjugate gradient needs only products ``H v``, which ``hessian_vector_product`` computes by
differentiating the gradient once more. A fixed number of iterations (no data-dependent stopping)
keeps both functions vmappable over tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from fastmeta.functional.params import Params

MatVec = Callable[[Params], Params]


def dot(a: Params, b: Params) -> Tensor:
    """Inner product of two parameter dictionaries with the same keys."""
    # a tensor: parameter dictionaries are not empty (sum's start, 0, is never returned)
    return cast(Tensor, sum((a[n] * b[n]).sum() for n in a))


def conjugate_gradient(matvec: MatVec, rhs: Params, iterations: int) -> Params:
    """Approximate ``A^-1 rhs`` for a symmetric positive-definite ``A`` given as ``matvec``.

    Starts from zero and runs exactly ``iterations`` steps; once the residual is zero the
    iterate stops changing (guarded divisions), so extra iterations are harmless.
    """
    if iterations < 1:
        raise ValueError(f"conjugate gradient needs at least 1 iteration, got {iterations}")
    x = {n: torch.zeros_like(v) for n, v in rhs.items()}
    residual = dict(rhs)
    direction = dict(rhs)
    residual_sq = dot(residual, residual)
    for _ in range(iterations):
        product = matvec(direction)
        curvature = dot(direction, product)
        alpha = _safe_ratio(residual_sq, curvature)
        x = {n: x[n] + alpha * direction[n] for n in x}
        residual = {n: residual[n] - alpha * product[n] for n in residual}
        new_residual_sq = dot(residual, residual)
        beta = _safe_ratio(new_residual_sq, residual_sq)
        direction = {n: residual[n] + beta * direction[n] for n in direction}
        residual_sq = new_residual_sq
    return x


def _safe_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, or 0 where the denominator is 0 (a converged solve)."""
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, 1), 0)


def hessian_vector_product(loss: Callable[[Params], Tensor], at: Params) -> MatVec:
    """``v -> H v`` where ``H`` is the Hessian of ``loss`` at ``at``.

    Reverse-over-reverse: the vector-Jacobian product of the gradient, which equals ``H v``
    because ``H`` is symmetric; the gradient's graph is built once and reused for every ``v``.
    """
    # torch types vjp's result as a union over has_aux; without aux it is (output, pullback)
    vjp = cast(
        "tuple[Any, Callable[[Params], tuple[Params]]]", torch.func.vjp(torch.func.grad(loss), at)
    )
    _, pullback = vjp

    def product(vector: Params) -> Params:
        return pullback(vector)[0]

    return product
