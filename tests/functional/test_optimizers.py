"""Differentiable inner optimizers: torch.optim parity, finite differences, zero gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms import MAML
from fastmeta.functional.inner import adapt
from fastmeta.functional.optimizers import SGD, Adam, inner_optimizer
from fastmeta.models import MLP
from tests.reference import random_classification_batch


def regression_problem(seed: int = 0):
    """A small MLP and a support/query split; input feature 2 is always zero, so the first
    layer's weights on it get exactly zero gradient (the case Adam's root must survive)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MLP(3, [8], 2)
    x = torch.randn(2, 10, 3, generator=g)
    x[..., 2] = 0.0
    y = torch.randn(2, 10, 2, generator=g)
    return model, (x[0], y[0]), (x[1], y[1])


def trajectory_with_torch(model, optimizer_cls, data, steps, **settings):
    """Parameters after each step of a ``torch.optim`` optimizer, on a varying loss."""
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    optimizer = optimizer_cls(params, **settings)
    names = [n for n, _ in model.named_parameters()]
    out = []
    for step in range(steps):
        optimizer.zero_grad()
        values = dict(zip(names, params, strict=True))
        loss_of(model, values, data, step).backward()
        optimizer.step()
        out.append([p.detach().clone() for p in params])
    return out


def trajectory_with_fastmeta(model, optimizer, data, steps, lr):
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = optimizer.init(params)
    out = []
    for step in range(steps):
        grads = torch.func.grad(lambda p, s=step: loss_of(model, p, data, s))(params)
        params, state = optimizer.step(params, grads, state, {n: lr for n in params}, step)
        out.append(list(params.values()))
    return out


def loss_of(model, params, data, step):
    """A loss that changes from step to step (a different half of the data each time)."""
    x, y = data
    half = slice(0, 5) if step % 2 == 0 else slice(5, 10)
    return F.mse_loss(torch.func.functional_call(model, params, (x[half],)), y[half])


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.0, 0.999), (0.5, 0.9)])
@pytest.mark.parametrize("eps,inside", [(1e-20, True), (1e-8, False), (1e-3, False)])
def test_adam_matches_torch_adam_step_for_step(float64, betas, eps, inside):
    """Moments, bias correction and step equal torch's to rounding. Torch adds eps outside the
    root; fastmeta's default puts it inside (compared here with an eps too small to matter; its
    purpose is tested by the finite-difference and NaN tests below)."""
    model, support, _ = regression_problem()
    lr, steps = 0.01, 8
    adam = Adam(betas=betas, eps=eps, eps_inside_root=inside)
    ours = trajectory_with_fastmeta(model, adam, support, steps, lr)
    torch_steps = trajectory_with_torch(
        model, torch.optim.Adam, support, steps, lr=lr, betas=betas, eps=eps
    )
    for step, (mine, theirs) in enumerate(zip(ours, torch_steps, strict=True)):
        for a, b in zip(mine, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14, msg=f"step {step}")


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_matches_torch_sgd(float64, nesterov):
    model, support, _ = regression_problem()
    lr, steps = 0.05, 8
    ours = trajectory_with_fastmeta(model, SGD(momentum=0.9, nesterov=nesterov), support, steps, lr)
    torch_steps = trajectory_with_torch(
        model, torch.optim.SGD, support, steps, lr=lr, momentum=0.9, nesterov=nesterov
    )
    for mine, theirs in zip(ours, torch_steps, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def meta_loss(model, params, support, query, optimizer, steps=3, lr=0.05):
    """Query loss after ``steps`` differentiable inner steps of ``optimizer`` on the support."""

    def forward(p, x):
        return torch.func.functional_call(model, p, (x,))

    fast = adapt(
        forward, params, *support, F.mse_loss, steps=steps, lr=lr, adapt_names=list(params),
        optimizer=optimizer,
    )  # fmt: skip
    return F.mse_loss(forward(fast, query[0]), query[1])


@pytest.mark.parametrize(
    "optimizer", [Adam(), Adam(betas=(0.0, 0.999)), SGD(momentum=0.9), SGD(0.9, nesterov=True)]
)
def test_second_order_gradient_through_optimizer_matches_finite_differences(float64, optimizer):
    model, support, query = regression_problem(seed=1)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    grads = torch.autograd.grad(
        meta_loss(model, params, support, query, optimizer), list(params.values())
    )
    assert all(torch.isfinite(g).all() for g in grads)
    g = torch.Generator().manual_seed(3)
    h = 1e-6
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=g) for p in params.values()]
        shifted = [
            {
                n: p.detach() + sign * h * d
                for (n, p), d in zip(params.items(), direction, strict=True)
            }
            for sign in (1, -1)
        ]
        losses = [float(meta_loss(model, s, support, query, optimizer)) for s in shifted]
        fd = (losses[0] - losses[1]) / (2 * h)
        analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction, strict=True))
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_adam_meta_gradient_is_finite_where_torch_style_adam_is_nan(float64):
    """The zero-gradient trap: with eps outside the root the meta-gradient is NaN."""
    model, support, query = regression_problem(seed=2)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    first_grads = torch.func.grad(lambda p: loss_of(model, p, support, 0))(params)
    assert torch.all(first_grads["body.0.weight"][:, 2] == 0)  # the trap is really set

    ours = torch.autograd.grad(
        meta_loss(model, params, support, query, Adam()), list(params.values())
    )
    naive = torch.autograd.grad(
        meta_loss(model, params, support, query, Adam(eps_inside_root=False)), list(params.values())
    )
    assert all(torch.isfinite(g).all() for g in ours)
    assert any(torch.isnan(g).any() for g in naive)


def test_maml_with_adam_inner_loop_vmap_equals_loop(float64):
    torch.manual_seed(0)
    model = MLP(16, [8], 3)
    batch = random_classification_batch(tasks=3, ways=3, shape=(16,))
    grads = {}
    for strategy in ("loop", "vmap"):
        maml = MAML(model, lr=0.01, steps=2, inner_optimizer=Adam(), strategy=strategy)
        maml.zero_grad()
        maml(batch).loss.backward()
        grads[strategy] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["loop"], grads["vmap"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bad_settings_say_what_to_change():
    with pytest.raises(ValueError, match="choose one of sgd, adam"):
        inner_optimizer("rmsprop")
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="needs momentum > 0"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match="betas must be two numbers"):
        Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps must be positive"):
        Adam(eps=0.0)
    with pytest.raises(ValueError, match="plain SGD steps"):
        MAML(MLP(1, [4], 1), inner_optimizer=Adam()).clone()
    assert inner_optimizer("sgd", momentum=0.5) == SGD(momentum=0.5)
