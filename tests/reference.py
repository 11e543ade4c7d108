"""Independent reference computations for the tests: plain per-task autograd, no vmap.

Deliberately written without fastmeta's engine: ordinary ``functional_call`` (torch's own
BatchNorm, correct outside vmap) and ``torch.autograd.grad`` one task at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.tasks import TaskBatch


def task_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    if targets.dtype.is_floating_point:
        return F.mse_loss(predictions, targets)
    return F.cross_entropy(predictions, targets)


def adapted_params(model, params, x, y, lr, steps, first_order, adapt_names):
    """Plain SGD on the support loss; ``lr`` a float or a per-step list of floats."""
    for step in range(steps):
        step_lr = lr[step] if isinstance(lr, list) else lr
        loss = task_loss(torch.func.functional_call(model, params, (x,)), y)
        names = [n for n in adapt_names]
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order)
        params = dict(params)
        for n, g in zip(names, grads, strict=True):
            params[n] = params[n] - step_lr * (g.detach() if first_order else g)
    return params


def meta_loss(
    model: nn.Module, params: dict, batch: TaskBatch, lr, steps, first_order, adapt_names
):
    """Mean over tasks of the query loss after adaptation, one task at a time."""
    losses = []
    for t in range(batch.num_tasks):
        fast = adapted_params(
            model,
            params,
            batch.support_x[t],
            batch.support_y[t],
            lr,
            steps,
            first_order,
            adapt_names,
        )
        out = torch.func.functional_call(model, fast, (batch.query_x[t],))
        losses.append(task_loss(out, batch.query_y[t]))
    return torch.stack(losses).mean()


def meta_gradient(model: nn.Module, batch: TaskBatch, lr, steps, first_order, adapt_names=None):
    """Gradient of :func:`meta_loss` with respect to the model's parameters, by name."""
    params = dict(model.named_parameters())
    names = list(params) if adapt_names is None else adapt_names
    loss = meta_loss(model, params, batch, lr, steps, first_order, names)
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        n: torch.zeros_like(p) if g is None else g
        for (n, p), g in zip(params.items(), grads, strict=True)
    }


def random_classification_batch(tasks=3, ways=3, shots=2, queries=2, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()

    def part(k):
        x = torch.randn(tasks, ways * k, *shape, generator=g, dtype=dtype)
        y = torch.arange(ways).repeat_interleave(k).repeat(tasks, 1)
        return x, y

    return TaskBatch(*part(shots), *part(queries))


def random_regression_batch(tasks=3, shots=4, queries=5, features=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()

    def part(k):
        x = torch.randn(tasks, k, features, generator=g, dtype=dtype)
        return x, torch.sin(3 * x) + 0.1 * torch.randn(tasks, k, 1, generator=g, dtype=dtype)

    return TaskBatch(*part(shots), *part(queries))
