"""Functional forward, BatchNorm handling and the choice of adapted parameters."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch import nn

from fastmeta.functional.params import (
    functional_forward,
    module_state,
    one_task_at_a_time,
    select_adaptable,
)
from fastmeta.models import Conv4

# functional_call under the BatchNorm mode (as under vmap), and the tensor swap of the loop
PATHS = pytest.mark.parametrize("context", [nullcontext, one_task_at_a_time], ids=["mode", "swap"])


@PATHS
def test_training_mode_batchnorm_uses_batch_statistics_and_mutates_nothing(context):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))  # tracks running stats
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    params, buffers = module_state(model)
    before = {n: b.clone() for n, b in buffers.items()}
    x = torch.randn(6, 1, 5, 5)
    with context():
        out = functional_forward(model, params, buffers, x)
    expected = nn.functional.batch_norm(
        model[0](x), None, None, model[1].weight, model[1].bias, training=True
    )
    torch.testing.assert_close(out, expected)
    for name, value in before.items():
        assert torch.equal(buffers[name], value), name


@PATHS
def test_eval_mode_batchnorm_uses_running_statistics(context):
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.eval()
    x = torch.randn(4, 3)
    params, buffers = module_state(bn)
    with context():
        torch.testing.assert_close(functional_forward(bn, params, buffers, x), bn(x))


def perturbed(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Other values for every parameter, still in the autograd graph of the originals."""
    return {n: p * 1.1 + 0.01 for n, p in params.items()}


@pytest.mark.parametrize("training", [True, False])
def test_swap_matches_functional_call_values_and_gradients_and_restores_the_module(training):
    torch.manual_seed(0)
    model = Conv4(1, 5, hidden=8).train(training)
    params, buffers = module_state(model)
    own = {n: t for n, t in model.state_dict(keep_vars=True).items()}
    x = torch.rand(7, 1, 28, 28)
    results = []
    for context in (nullcontext, one_task_at_a_time):
        with context():
            out = functional_forward(model, perturbed(params), buffers, x)
        results.append((out, torch.autograd.grad(out.square().sum(), list(params.values()))))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a)
    assert all(t is own[n] for n, t in model.state_dict(keep_vars=True).items())


def test_swap_replaces_tied_weights_everywhere_like_functional_call():
    torch.manual_seed(0)
    first, second = nn.Linear(3, 3), nn.Linear(3, 3)
    second.weight = first.weight  # tied: named_parameters() lists it once
    model = nn.Sequential(first, nn.Tanh(), second)
    params, buffers = module_state(model)
    assert "2.weight" not in params
    x = torch.randn(4, 3)
    with one_task_at_a_time():
        swapped = functional_forward(model, perturbed(params), buffers, x)
    torch.testing.assert_close(swapped, functional_forward(model, perturbed(params), buffers, x))
    assert model[2].weight is model[0].weight


def test_swap_puts_everything_back_when_the_forward_raises():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    params, buffers = module_state(model)
    own = dict(model.state_dict(keep_vars=True))
    with one_task_at_a_time(), pytest.raises(RuntimeError):
        functional_forward(model, perturbed(params), buffers, torch.randn(2, 4))  # wrong width
    assert all(t is own[n] for n, t in model.state_dict(keep_vars=True).items())


def test_swap_refuses_a_name_the_module_does_not_have():
    model = nn.Linear(2, 2)
    params, buffers = module_state(model)
    with one_task_at_a_time(), pytest.raises(ValueError, match="no parameter or buffer named"):
        functional_forward(model, {**params, "head.weight": params["weight"]}, buffers,
                           torch.randn(1, 2))  # fmt: skip


class RunningBatchNorm(nn.Module):
    """Calls ``F.batch_norm`` on buffers of its own: only the BatchNorm mode keeps them fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("var", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.batch_norm(x, self.mean, self.var, training=True, momentum=0.5)


def test_a_module_with_buffers_of_its_own_keeps_the_mode_one_task_at_a_time():
    model = RunningBatchNorm()
    params, buffers = module_state(model)
    x = torch.randn(8, 3) + 2.0
    with one_task_at_a_time():
        out = functional_forward(model, params, buffers, x)
    torch.testing.assert_close(out, nn.functional.batch_norm(x, None, None, training=True))
    assert torch.equal(model.mean, torch.zeros(3)) and torch.equal(model.var, torch.ones(3))


def test_select_adaptable_by_prefix_and_rejects_a_name_that_matches_nothing():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(2, 2))
    model.add_module("head", nn.Linear(2, 2))
    params = dict(model.named_parameters())
    assert select_adaptable(params, ["head"]) == ["head.weight", "head.bias"]
    assert select_adaptable(params, lambda n: n.endswith("bias")) == ["body.bias", "head.bias"]
    with pytest.raises(ValueError, match="parameter names are"):
        select_adaptable(params, ["heads"])


class _TwiceRegistered(torch.nn.Module):
    """A layer held under two names (as learn2learn's OmniglotCNN holds its layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(2, 2)
        self.seq = torch.nn.Sequential(self.a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


def test_a_layer_registered_under_two_names_is_left_as_it_was() -> None:
    model = _TwiceRegistered()
    params, buffers = module_state(model)
    weight, bias = model.a.weight, model.a.bias
    fast = {n: 2 * t for n, t in params.items()}
    x = torch.randn(3, 2)
    out = functional_forward(model, fast, buffers, x)  # the functional_call path
    torch.testing.assert_close(out, x @ (2 * weight).T + 2 * bias)
    assert model.a.weight is weight and model.seq[0].weight is weight and model.a.bias is bias
    batched = torch.func.vmap(lambda p, x: functional_forward(model, p, buffers, x))(
        {n: torch.stack([t, 3 * t]) for n, t in params.items()}, torch.stack([x, x])
    )
    torch.testing.assert_close(batched[1], x @ (3 * weight).T + 3 * bias)
    assert model.a.weight is weight
