"""Check that a method computed the right gradient before its speed is reported.

The reference is a plain per-task autograd loop in float64 on the same weights and batch, so
it is independent of every method timed; a method is accepted when its gradient (all
parameters as one vector) is within ``tolerance`` of the reference, relative to its norm.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.tasks import TaskBatch

TOLERANCE = 1e-2
"""Float32 methods were measured 1e-6 to 1.5e-3 from the float64 reference on these workloads
(rounding, amplified by BatchNorm over 5 support images); a first-order gradient is about 0.85
from the second-order one, so a wrong derivative cannot pass."""


def maml_reference_gradient(
    model: nn.Module, batch: TaskBatch, inner_lr: float, steps: int, first_order: bool
) -> dict[str, Tensor]:
    """Float64 gradient of the mean query loss after ``steps`` inner SGD steps per task."""
    reference = copy.deepcopy(model).double()
    params = dict(reference.named_parameters())
    for t in range(batch.num_tasks):
        fast = params
        for _ in range(steps):
            logits = torch.func.functional_call(reference, fast, (batch.support_x[t].double(),))
            loss = F.cross_entropy(logits, batch.support_y[t])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            fast = {
                n: p - inner_lr * (g.detach() if first_order else g)
                for (n, p), g in zip(fast.items(), grads, strict=True)
            }
        logits = torch.func.functional_call(reference, fast, (batch.query_x[t].double(),))
        (F.cross_entropy(logits, batch.query_y[t]) / batch.num_tasks).backward()
    return {n: p.grad for n, p in reference.named_parameters()}


def protonet_reference_gradient(encoder: nn.Module, batch: TaskBatch) -> dict[str, Tensor]:
    """Float64 gradient of the mean query loss of Prototypical Networks (squared Euclidean)."""
    reference = copy.deepcopy(encoder).double()
    ways = int(batch.support_y.max()) + 1
    shots = batch.support_x.shape[1]
    for t in range(batch.num_tasks):
        embedded = reference(torch.cat([batch.support_x[t], batch.query_x[t]]).double())
        support, query = embedded[:shots], embedded[shots:]  # one call: the episode's BN stats
        prototypes = torch.stack([support[batch.support_y[t] == c].mean(0) for c in range(ways)])
        logits = -torch.cdist(query, prototypes).pow(2)
        (F.cross_entropy(logits, batch.query_y[t]) / batch.num_tasks).backward()
    return {n: p.grad for n, p in reference.named_parameters()}


def relative_error(model: nn.Module, reference: dict[str, Tensor]) -> float:
    """``|g - g_ref| / |g_ref|`` over all parameters; a missing gradient counts as zero."""
    names = list(reference)
    params = dict(model.named_parameters())
    if sorted(params) != sorted(names):
        raise ValueError(f"parameter names differ: {sorted(params)} vs {sorted(names)}")
    actual = torch.cat(
        [
            (params[n].grad if params[n].grad is not None else torch.zeros_like(params[n]))
            .double()
            .flatten()
            .cpu()
            for n in names
        ]
    )
    expected = torch.cat([reference[n].flatten().cpu() for n in names])
    return float((actual - expected).norm() / expected.norm())


def checked(
    step: Callable[[], None], model: nn.Module, reference: dict[str, Tensor], tolerance: float
) -> tuple[bool, float | str]:
    """Run ``step`` once; ``(accepted, relative error or the exception's message)``."""
    try:
        step()
    except Exception as error:  # a peer failing on this workload is reported, not fatal
        return False, f"{type(error).__name__}: {error}"
    error = relative_error(model, reference)
    return error <= tolerance, error
