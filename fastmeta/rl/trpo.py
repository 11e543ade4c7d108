"""A TRPO step (Schulman et al. 2015) on any differentiable surrogate and KL divergence.

The step direction solves ``(F + damping I) s = g`` by conjugate gradient
(:func:`fastmeta.functional.conjugate_gradient.conjugate_gradient`), where ``g`` is the
surrogate's gradient and ``F`` the Hessian of the mean KL divergence (the Fisher matrix at the
old policy), applied as Fisher-vector products by differentiating the KL's gradient once more;
it is scaled so that the quadratic model of the KL equals ``max_kl``, then shrunk by
``backtrack_ratio`` until the KL is at most ``max_kl`` and the surrogate improved (at most
``max_backtracks`` tries; otherwise the parameters are left unchanged). For MAML-TRPO the
surrogate and the KL are those of the adapted policies, so ``g`` is the meta-gradient and the
products go through the inner loop. ``fisher_kl`` may estimate the KL on a subsample of the
data, which makes every product cheaper (rllab's ``subsample_factor``); ``reduce_*`` sum
values over processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fastmeta.functional.conjugate_gradient import conjugate_gradient, dot
from fastmeta.functional.params import Params

Evaluate = Callable[[], tuple[Tensor, Tensor]]
"""``() -> (surrogate, kl)`` at the parameters' current values (the surrogate is maximised)."""
FisherKL = Callable[[], Tensor]
"""``() -> kl`` on the data the Fisher-vector products use (all of it, or a subsample)."""
ReduceParams = Callable[[Params], Params]
ReduceValue = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TRPOSettings:
    """rllab's defaults (``ConjugateGradientOptimizer``), which MAML's reference code used."""

    max_kl: float = 0.01
    cg_iterations: int = 10
    damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15


@dataclass(frozen=True)
class TRPOResult:
    """What one step did: the surrogate and KL before and after, the backtracks taken."""

    accepted: bool
    surrogate_before: float
    surrogate_after: float
    kl: float
    backtracks: int


def trpo_step(
    parameters: Mapping[str, nn.Parameter],
    evaluate: Evaluate,
    settings: TRPOSettings,
    fisher_kl: FisherKL | None = None,
    reduce_params: ReduceParams | None = None,
    reduce_value: ReduceValue | None = None,
) -> TRPOResult:
    """Update ``parameters`` in place by one TRPO step (see the module docstring)."""
    sum_params = reduce_params or (lambda v: v)
    sum_value = reduce_value or (lambda v: v.detach())
    names = list(parameters)
    leaves = [parameters[n] for n in names]
    objective, kl = evaluate()
    gradient = _as_params(names, torch.autograd.grad(objective, leaves, retain_graph=True))
    gradient = sum_params(gradient)
    if fisher_kl is not None:
        kl = fisher_kl()
    kl_gradient = torch.autograd.grad(kl, leaves, create_graph=True)

    def fisher_product(vector: Params) -> Params:
        inner = dot(dict(zip(names, kl_gradient, strict=True)), vector)
        product = torch.autograd.grad(inner, leaves, retain_graph=True)
        product_sum = sum_params(_as_params(names, product))
        return {n: product_sum[n] + settings.damping * vector[n] for n in names}

    direction = conjugate_gradient(fisher_product, gradient, settings.cg_iterations)
    curvature = float(dot(direction, fisher_product(direction)))
    before = float(sum_value(objective))
    if not curvature > 0 or not math.isfinite(curvature):
        return TRPOResult(False, before, before, 0.0, 0)
    scale = math.sqrt(2 * settings.max_kl / curvature)
    start = {n: p.detach().clone() for n, p in parameters.items()}
    with torch.no_grad():
        for tries in range(settings.max_backtracks):
            fraction = scale * settings.backtrack_ratio**tries
            for n, p in parameters.items():
                p.copy_(start[n] + fraction * direction[n])
            new_objective, new_kl = (float(sum_value(v)) for v in evaluate())
            if (
                math.isfinite(new_objective)
                and new_kl <= settings.max_kl
                and new_objective > before
            ):
                return TRPOResult(True, before, new_objective, new_kl, tries)
        for n, p in parameters.items():
            p.copy_(start[n])
    return TRPOResult(False, before, before, 0.0, settings.max_backtracks)


def _as_params(names: list[str], tensors: tuple[Tensor, ...]) -> Params:
    return {n: t.detach() for n, t in zip(names, tensors, strict=True)}
