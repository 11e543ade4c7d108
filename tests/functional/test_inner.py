"""Inner-loop adaptation against hand-computed SGD steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastmeta.functional.inner import adapt, step_lr


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
