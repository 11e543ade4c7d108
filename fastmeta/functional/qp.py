"""A batched, differentiable solver for small convex quadratic programs.

Solves, for every problem ``i`` of a batch,

    minimise 1/2 z^T Q z + p^T z   subject to   G z <= h,   A z = b

with ``Q`` positive semi-definite, by a primal-dual interior point method with Mehrotra's
predictor-corrector steps (Nocedal & Wright, ch. 16.6), in float64 whatever the input dtype.
Gradients come from implicit differentiation of the KKT conditions at the solution (as in
OptNet, Amos & Kolter 2017): one extra linear solve per backward, no unrolled iterations, so
memory does not grow with the number of iterations. This is what the MetaOptNet SVM head needs;
problems are small (tens to hundreds of variables), so dense batched factorisations are used.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class QPSolution:
    """Primal ``z [B, n]``, inequality multipliers ``lam [B, m]`` and slacks ``slack [B, m]``
    (``h - G z``), equality multipliers ``nu [B, e]``, and the iterations the solver took."""

    z: Tensor
    lam: Tensor
    slack: Tensor
    nu: Tensor
    iterations: int


def interior_point(
    Q: Tensor,
    p: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor,
    b: Tensor,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> QPSolution:
    """Solve the batched QP without gradients; all inputs float64 with a batch dimension.

    Stops when every problem's primal and dual residuals and duality measure are below ``tol``
    (relative to the size of the data), or after ``max_iter`` iterations; raises
    ``RuntimeError`` when that leaves a residual above ``1e3 * tol`` (an infeasible or badly
    scaled problem).
    """
    kkt = _KKT(Q, G, A)
    scale = 1.0 + max(_abs_max(x) for x in (Q, p, G, h, A, b))
    # Start from the least-squares point of the linearised KKT system, slacks shifted to be
    # safely positive, multipliers one.
    z, nu = kkt.solve(torch.ones_like(h), -p + _matvec(G.mT, h), b)
    slack = h - _matvec(G, z)
    if slack.shape[-1]:
        slack = slack + (1.0 - slack.amin(-1, keepdim=True)).clamp(min=0.0)
    lam = torch.ones_like(slack)
    m = max(h.shape[1], 1)
    residual = torch.inf
    for iteration in range(max_iter + 1):
        r_dual = _matvec(Q, z) + p + kkt.transposed(lam, nu)
        r_ineq = _matvec(G, z) + slack - h
        r_eq = _matvec(A, z) - b
        mu = (slack * lam).sum(-1, keepdim=True) / m
        residual = max(_abs_max(r_dual), _abs_max(r_ineq), _abs_max(r_eq), _abs_max(mu))
        if residual < tol * scale or not math.isfinite(residual) or iteration == max_iter:
            break
        residuals = (r_dual, r_ineq, r_eq)
        # Mehrotra: an affine-scaling (predictor) step sets the centring, then the corrector.
        affine = kkt.direction(slack, lam, residuals, -slack * lam)
        step = _max_step(slack, affine[1], lam, affine[2]).clamp(max=1.0)
        mu_affine = ((slack + step * affine[1]) * (lam + step * affine[2])).sum(-1, keepdim=True)
        sigma = (mu_affine / m / mu).clamp(0.0, 1.0) ** 3
        target = -slack * lam + sigma * mu - affine[1] * affine[2]
        dz, dslack, dlam, dnu = kkt.direction(slack, lam, residuals, target)
        step = (0.99 * _max_step(slack, dslack, lam, dlam)).clamp(max=1.0)
        z, slack = z + step * dz, slack + step * dslack
        lam, nu = lam + step * dlam, nu + step * dnu
    if not residual <= 1e3 * tol * scale:  # also catches NaN
        raise RuntimeError(
            f"the QP solver did not converge in {max_iter} iterations (KKT residual "
            f"{residual:.3g}); the problem may be infeasible or badly scaled: raise max_iter or "
            "rescale its data"
        )
    return QPSolution(z, lam, slack, nu, iteration)


class _KKT:
    """The Newton system of the interior point method for fixed ``Q``, ``G``, ``A``."""

    def __init__(self, Q: Tensor, G: Tensor, A: Tensor) -> None:
        self.Q, self.G, self.A = Q, G, A

    def transposed(self, lam: Tensor, nu: Tensor) -> Tensor:
        """``G^T lam + A^T nu``."""
        return _matvec(self.G.mT, lam) + _matvec(self.A.mT, nu)

    def solve(self, weights: Tensor, rhs_z: Tensor, rhs_eq: Tensor) -> tuple[Tensor, Tensor]:
        """``[[Q + G^T W G, A^T], [A, 0]] [dz; dnu] = [rhs_z; rhs_eq]``, ``W = diag(weights)``."""
        Q, G, A = self.Q, self.G, self.A
        batch, e, n = A.shape
        top = torch.cat([Q + G.mT @ (weights.unsqueeze(-1) * G), A.mT], dim=-1)
        bottom = torch.cat([A, A.new_zeros(batch, e, e)], dim=-1)
        solution = torch.linalg.solve(
            torch.cat([top, bottom], dim=-2), torch.cat([rhs_z, rhs_eq], dim=-1)
        )
        return solution[:, :n], solution[:, n:]

    def direction(
        self,
        slack: Tensor,
        lam: Tensor,
        residuals: tuple[Tensor, Tensor, Tensor],
        complementarity: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Newton step ``(dz, dslack, dlam, dnu)`` zeroing the linearised residuals, with the
        complementarity row ``lam * dslack + slack * dlam = complementarity``; the slack step is
        eliminated, leaving the symmetric system of :meth:`solve`."""
        r_dual, r_ineq, r_eq = residuals
        correction = (complementarity + lam * r_ineq) / slack
        rhs_z = -r_dual - _matvec(self.G.mT, correction)
        dz, dnu = self.solve(lam / slack, rhs_z, -r_eq)
        dslack = -r_ineq - _matvec(self.G, dz)
        dlam = (complementarity - lam * dslack) / slack
        return dz, dslack, dlam, dnu


def _matvec(matrix: Tensor, vector: Tensor) -> Tensor:
    """Batched ``[B, i, j] @ [B, j] -> [B, i]``."""
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def _abs_max(x: Tensor) -> float:
    """Largest absolute entry of ``x``, 0 when it is empty."""
    return float(x.abs().amax()) if x.numel() else 0.0


def _max_step(slack: Tensor, dslack: Tensor, lam: Tensor, dlam: Tensor) -> Tensor:
    """Largest step ``t`` per problem ``[B, 1]`` keeping slacks and multipliers >= 0
    (infinite when no component decreases)."""
    values, steps = torch.cat([slack, lam], -1), torch.cat([dslack, dlam], -1)
    ratios = torch.where(steps < 0, -values / steps.clamp(max=-1e-300), torch.inf)
    if ratios.shape[-1] == 0:  # no inequality constraints: nothing limits the step
        return ratios.new_full((ratios.shape[0], 1), torch.inf)
    return ratios.amin(-1, keepdim=True)


def _outer(left: Tensor, right: Tensor) -> Tensor:
    """Batched outer products ``[B, i] x [B, j] -> [B, i, j]``."""
    return left.unsqueeze(-1) * right.unsqueeze(-2)


class _QPFunction(torch.autograd.Function):
    """``z*(Q, p, G, h, A, b)`` with gradients by implicit differentiation of the KKT system."""

    @staticmethod
    def forward(
        ctx: Any,
        Q: Tensor,
        p: Tensor,
        G: Tensor,
        h: Tensor,
        A: Tensor,
        b: Tensor,
        tol: float,
        max_iter: int,
    ) -> Tensor:
        dtype = p.dtype
        Q, p, G, h, A, b = (x.detach().double() for x in (Q, p, G, h, A, b))
        Q = 0.5 * (Q + Q.mT)
        solution = interior_point(Q, p, G, h, A, b, tol, max_iter)
        ctx.save_for_backward(Q, G, A, solution.z, solution.lam, solution.slack, solution.nu)
        ctx.input_dtype = dtype
        return solution.z.to(dtype)

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        Q, G, A, z, lam, slack, nu = ctx.saved_tensors
        batch, n = z.shape
        m, e = lam.shape[1], nu.shape[1]
        # KKT residual F = [Qz + p + G^T lam + A^T nu; lam * (Gz - h); Az - b] = 0 at the
        # solution. Its Jacobian J in (z, lam, nu); the gradient of a loss l(z) with respect to
        # any input theta is w^T dF/dtheta, where J^T w = -[dl/dz; 0; 0].
        zeros = Q.new_zeros
        rows = [
            [Q, G.mT, A.mT],
            [lam.unsqueeze(-1) * G, torch.diag_embed(-slack), zeros(batch, m, e)],
            [A, zeros(batch, e, m), zeros(batch, e, e)],
        ]
        J = torch.cat([torch.cat(row, -1) for row in rows], -2)
        rhs = torch.cat([-grad_z.double(), zeros(batch, m + e)], -1)
        w = torch.linalg.solve(J.transpose(-1, -2), rhs)
        w_z, w_lam, w_nu = w[:, :n], w[:, n : n + m], w[:, n + m :]
        scaled_lam = lam * w_lam
        grad_Q = 0.5 * (_outer(w_z, z) + _outer(z, w_z))
        grad_G = _outer(lam, w_z) + _outer(scaled_lam, z)
        grad_A = _outer(nu, w_z) + _outer(w_nu, z)
        grads = (grad_Q, w_z, grad_G, -scaled_lam, grad_A, -w_nu)
        wanted = ctx.needs_input_grad[:6]
        cast = [
            g.to(ctx.input_dtype) if need else None for g, need in zip(grads, wanted, strict=True)
        ]
        return (*cast, None, None)


def solve_qp(
    Q: Tensor,
    p: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor | None = None,
    b: Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> Tensor:
    """The minimiser ``z [B, n]`` of ``1/2 z^T Q z + p^T z`` s.t. ``G z <= h``, ``A z = b``.

    Shapes: ``Q [B, n, n]`` (positive semi-definite; only its symmetric part is used), ``p [B, n]``,
    ``G [B, m, n]``, ``h [B, m]``, ``A [B, e, n]``, ``b [B, e]`` (``A`` and ``b`` may be omitted).
    Differentiable in every tensor input; the backward pass solves one linear system per
    problem. The iteration runs in float64; ``tol`` bounds the KKT residual relative to the
    largest entry of the data, so gradients are exact to about that precision.
    """
    if p.dim() != 2:
        raise ValueError(f"p must be [batch, n]; got shape {tuple(p.shape)}")
    batch, n = p.shape
    if A is None or b is None:
        if A is not None or b is not None:
            raise ValueError("give both A and b for equality constraints, or neither")
        A, b = p.new_zeros(batch, 0, n), p.new_zeros(batch, 0)
    expected = {
        "Q": (Q, (batch, n, n)),
        "G": (G, (batch, G.shape[1] if G.dim() == 3 else -1, n)),
        "h": (h, (batch, G.shape[1] if G.dim() == 3 else -1)),
        "A": (A, (batch, A.shape[1] if A.dim() == 3 else -1, n)),
        "b": (b, (batch, A.shape[1] if A.dim() == 3 else -1)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} for p of shape {(batch, n)}; got "
                f"{tuple(tensor.shape)}"
            )
    # torch leaves Function.apply unannotated; it returns what forward returns
    apply = typing.cast(Callable[..., Tensor], _QPFunction.apply)
    return apply(Q, p, G, h, A, b, tol, max_iter)
