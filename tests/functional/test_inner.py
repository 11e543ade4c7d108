"""Inner-loop adaptation against hand-computed SGD steps, and its two gradient paths."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from fastmeta.functional.inner import adapt, step_lr
from fastmeta.functional.params import one_task_at_a_time


def linear(params, x):
    return x @ params["w"] + params["b"]


def test_adapt_takes_exact_sgd_steps_with_per_parameter_and_per_step_rates():
    torch.manual_seed(0)
    x, y = torch.randn(5, 3), torch.randn(5, 1)
    params = {"w": torch.randn(3, 1), "b": torch.zeros(1)}
    lrs = [{"w": torch.full((3, 1), 0.1), "b": 0.2}, {"w": torch.full((3, 1), 0.05), "b": 0.0}]
    fast = adapt(linear, params, x, y, F.mse_loss, steps=2, lr=lrs, adapt_names=["w", "b"])
    expected = dict(params)
    for rates in lrs:
        w = expected["w"].clone().requires_grad_()
        b = expected["b"].clone().requires_grad_()
        gw, gb = torch.autograd.grad(F.mse_loss(x @ w + b, y), (w, b))
        expected = {"w": w.detach() - rates["w"] * gw, "b": b.detach() - rates["b"] * gb}
    torch.testing.assert_close(fast["w"], expected["w"])
    torch.testing.assert_close(fast["b"], expected["b"])


def test_only_named_parameters_adapt():
    x, y = torch.randn(5, 3), torch.randn(5, 1)
    params = {"w": torch.randn(3, 1), "b": torch.ones(1)}
    fast = adapt(linear, params, x, y, F.mse_loss, steps=3, lr=0.1, adapt_names=["w"])
    assert fast["b"] is params["b"]
    assert not torch.equal(fast["w"], params["w"])


def test_step_lr_errors_name_the_problem():
    with pytest.raises(ValueError, match="cover 1 steps"):
        step_lr([0.1], 1, "w")
    with pytest.raises(KeyError, match="no inner learning rate for parameter 'b'"):
        step_lr({"w": 0.1}, 0, "b")


def with_unused(params, x):
    return torch.tanh(x @ params["w"]) @ params["v"]  # params["unused"] plays no part


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("no_grad", [False, True])
def test_one_task_at_a_time_path_equals_the_transform_path(first_order, no_grad):
    """Loops take inner gradients with plain autograd, vmap with torch.func.grad: same steps,
    same meta-gradient, same behaviour under no_grad and for an unused parameter."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
    initial = {
        "w": torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
        "v": torch.randn(4, 1, dtype=torch.float64, requires_grad=True),
        "unused": torch.randn(2, dtype=torch.float64, requires_grad=True),
    }

    def run(one_by_one: bool):
        with contextlib.ExitStack() as stack:
            if one_by_one:
                stack.enter_context(one_task_at_a_time())
            if no_grad:
                stack.enter_context(torch.no_grad())
            fast = adapt(
                with_unused, initial, x, y, F.mse_loss, steps=3, lr=0.3,
                adapt_names=["w", "v", "unused"], first_order=first_order,
            )  # fmt: skip
        if no_grad:
            assert not any(p.requires_grad for p in fast.values())
            return fast, None
        loss = F.mse_loss(with_unused(fast, x), y) + fast["unused"].sum()
        return fast, torch.autograd.grad(loss, list(initial.values()))

    (fast_loop, grads_loop), (fast_vmap, grads_vmap) = run(True), run(False)
    for name in initial:
        torch.testing.assert_close(fast_loop[name], fast_vmap[name], rtol=1e-12, atol=1e-12)
    if grads_loop is not None:
        for a, b in zip(grads_loop, grads_vmap, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
