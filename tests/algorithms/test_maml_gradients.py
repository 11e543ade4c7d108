"""MAML / first-order MAML meta-gradients against independent references.

Every combination of model (MLP; conv net with BatchNorm), inner steps, order, strategy (vmap,
loop) and chunking must equal a plain per-task autograd loop, and (float64) finite differences.
"""

from __future__ import annotations

import pytest
import torch

from fastmeta.algorithms import MAML
from fastmeta.models import MLP, Conv4
from tests.reference import (
    meta_gradient,
    meta_loss,
    random_classification_batch,
    random_regression_batch,
)


def make_problem(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "mlp":
        return MLP(1, [16, 16], 1), random_regression_batch(seed=seed)
    return Conv4(1, 3, hidden=6, blocks=2), random_classification_batch(seed=seed)


def fastmeta_gradient(model, batch, **kwargs):
    maml = MAML(model, **kwargs)
    maml.zero_grad()
    maml(batch).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def assert_close_dicts(actual, expected, rtol, atol):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("kind", ["mlp", "conv_bn"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("strategy,chunk_size", [("loop", None), ("vmap", None), ("vmap", 2)])
def test_meta_gradient_matches_plain_autograd_loop(kind, steps, first_order, strategy, chunk_size):
    model, batch = make_problem(kind)
    lr = 0.1
    expected = meta_gradient(model, batch, lr, steps, first_order)
    actual = fastmeta_gradient(
        model,
        batch,
        lr=lr,
        steps=steps,
        first_order=first_order,
        strategy=strategy,
        chunk_size=chunk_size,
    )
    assert_close_dicts(actual, expected, rtol=1e-4, atol=1e-6)


def directional_fd(fn, params: dict, direction: dict, eps: float = 1e-6) -> float:
    """Central finite difference of ``fn(params)`` along ``direction``."""
    plus = {n: (p + eps * direction[n]).requires_grad_() for n, p in params.items()}
    minus = {n: (p - eps * direction[n]).requires_grad_() for n, p in params.items()}
    return float((fn(plus) - fn(minus)) / (2 * eps))


@pytest.mark.parametrize("kind", ["mlp", "conv_bn"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_second_order_meta_gradient_matches_finite_differences(float64, kind, steps, strategy):
    model, batch = make_problem(kind, seed=1)
    lr = 0.1
    grads = fastmeta_gradient(model, batch, lr=lr, steps=steps, strategy=strategy)
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = list(params)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
        fd = directional_fd(
            lambda p: meta_loss(model, p, batch, lr, steps, False, names).detach(),
            params,
            direction,
        )
        analytic = sum(float((grads[n] * direction[n]).sum()) for n in names)
        assert analytic == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["mlp", "conv_bn"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_first_order_gradient_is_query_gradient_at_adapted_params(float64, kind, strategy):
    """First-order MAML's gradient is d(query loss)/d(adapted params), checked by differences."""
    from tests.reference import adapted_params, task_loss

    model, batch = make_problem(kind, seed=2)
    lr, steps = 0.1, 2
    grads = fastmeta_gradient(model, batch, lr=lr, steps=steps, first_order=True, strategy=strategy)
    params = dict(model.named_parameters())
    fast = [
        {
            n: p.detach()
            for n, p in adapted_params(
                model, params, batch.support_x[t], batch.support_y[t], lr, steps, True, list(params)
            ).items()
        }
        for t in range(batch.num_tasks)
    ]

    def query_loss(shift: dict) -> torch.Tensor:
        losses = [
            task_loss(
                torch.func.functional_call(
                    model, {n: f[n] + shift[n] for n in f}, (batch.query_x[t],)
                ),
                batch.query_y[t],
            )
            for t, f in enumerate(fast)
        ]
        return torch.stack(losses).mean().detach()

    g = torch.Generator().manual_seed(7)
    zero = {n: torch.zeros_like(p) for n, p in params.items()}
    for _ in range(3):
        direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
        fd = directional_fd(query_loss, zero, direction)
        analytic = sum(float((grads[n] * direction[n]).sum()) for n in params)
        assert analytic == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_batchnorm_second_order_under_vmap_is_exact(float64):
    """The known torch trap: F.batch_norm's double backward with batched affine weights under vmap.

    fastmeta applies the affine part by hand; its vmap meta-gradient must equal the loop's to
    float64 precision (the unpatched path is off by about 1e-2 relative on this problem).
    """
    torch.manual_seed(0)
    model = Conv4(1, 5, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=3, ways=5, shots=1, queries=1)
    loop = fastmeta_gradient(model, batch, lr=0.4, steps=2, strategy="loop")
    vmap = fastmeta_gradient(model, batch, lr=0.4, steps=2, strategy="vmap")
    flat = lambda g: torch.cat([t.flatten() for t in g.values()])  # noqa: E731
    relative = (flat(loop) - flat(vmap)).norm() / flat(loop).norm()
    assert relative < 1e-10
