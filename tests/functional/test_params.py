"""Functional forward, BatchNorm handling and the choice of adapted parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastmeta.functional.params import functional_forward, module_state, select_adaptable


def test_training_mode_batchnorm_uses_batch_statistics_and_mutates_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))  # tracks running stats
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    params, buffers = module_state(model)
    before = {n: b.clone() for n, b in buffers.items() if n.endswith(("mean", "var"))}
    x = torch.randn(6, 1, 5, 5)
    out = functional_forward(model, params, buffers, x)
    expected = nn.functional.batch_norm(
        model[0](x), None, None, model[1].weight, model[1].bias, training=True
    )
    torch.testing.assert_close(out, expected)
    for name, value in before.items():
        assert torch.equal(buffers[name], value), name


def test_eval_mode_batchnorm_uses_running_statistics():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.eval()
    x = torch.randn(4, 3)
    params, buffers = module_state(bn)
    torch.testing.assert_close(functional_forward(bn, params, buffers, x), bn(x))


def test_select_adaptable_by_prefix_and_rejects_a_name_that_matches_nothing():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(2, 2))
    model.add_module("head", nn.Linear(2, 2))
    params = dict(model.named_parameters())
    assert select_adaptable(params, ["head"]) == ["head.weight", "head.bias"]
    assert select_adaptable(params, lambda n: n.endswith("bias")) == ["body.bias", "head.bias"]
    with pytest.raises(ValueError, match="parameter names are"):
        select_adaptable(params, ["heads"])
