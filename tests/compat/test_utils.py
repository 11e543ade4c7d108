"""learn2learn's module utilities at the top level: clone, update and detach whole modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fastmeta.compat.learn2learn as l2l


class Tied(nn.Module):
    """An encoder and a decoder sharing one weight, plus BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 4, bias=False)
        self.decoder = nn.Linear(4, 4, bias=False)
        self.decoder.weight = self.encoder.weight
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.decoder(self.norm(self.encoder(x)))


def test_clone_module_is_a_differentiable_copy_sharing_running_statistics(float64):
    torch.manual_seed(0)
    model = Tied()
    clone = l2l.clone_module(model)
    assert type(clone) is Tied and clone is not model and clone.encoder is not model.encoder
    assert clone.encoder.weight is clone.decoder.weight  # still tied, cloned once
    assert clone.encoder.weight is not model.encoder.weight
    assert not clone.encoder.weight.is_leaf
    assert clone.norm.running_mean is model.norm.running_mean  # shared, as in learn2learn
    x = torch.randn(5, 4)
    torch.testing.assert_close(clone(x), model(x))
    (grad,) = torch.autograd.grad(clone(x).pow(2).sum(), [model.encoder.weight])
    (expected,) = torch.autograd.grad(model(x).pow(2).sum(), [model.encoder.weight])
    torch.testing.assert_close(grad, expected)
    memo: dict = {}
    first = l2l.clone_module(model.encoder, memo=memo)
    second = l2l.clone_module(model.decoder, memo=memo)
    assert first.weight is second.weight


def test_clone_module_of_an_lstm_uses_the_cloned_weights():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    clone = l2l.clone_module(lstm)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
    x = torch.randn(2, 1, 3)
    assert lstm(x)[0].abs().max() == 0
    assert clone(x)[0].abs().max() > 0  # the clone keeps the values it was cloned with


def test_update_module_adds_each_update_in_place_of_the_parameter(float64):
    torch.manual_seed(0)
    model = Tied()
    clone = l2l.clone_module(model)
    norm_weight = list(clone.parameters())[1]
    updates = [torch.ones(4, 4), None, 2 * torch.ones(4)]
    assert l2l.update_module(clone, updates) is clone
    torch.testing.assert_close(clone.encoder.weight, model.encoder.weight + 1)
    assert clone.decoder.weight is clone.encoder.weight
    assert clone.norm.weight is norm_weight
    torch.testing.assert_close(clone.norm.bias, model.norm.bias + 2)
    clone.norm.weight.update = -norm_weight  # learn2learn's convention: a tensor's .update
    l2l.update_module(clone)
    assert torch.all(clone.norm.weight == 0)
    with pytest.raises(ValueError, match="1 updates for 3 parameters"):
        l2l.update_module(clone, [None])


def test_detach_module_cuts_the_graph_in_place():
    model = nn.Linear(3, 2)
    clone = l2l.clone_module(model)
    l2l.detach_module(clone)
    assert not clone.weight.requires_grad and clone.weight.grad_fn is None
    clone = l2l.clone_module(model)
    l2l.detach_module(clone, keep_requires_grad=True)
    assert clone.weight.requires_grad and clone.weight.is_leaf
    clone(torch.randn(4, 3)).sum().backward()
    assert clone.weight.grad is not None and model.weight.grad is None


def test_magic_box_clone_parameters_distributions_and_accuracy():
    x = torch.tensor([0.3, -1.2], requires_grad=True)
    box = l2l.magic_box(x)
    assert torch.equal(box, torch.ones(2))
    (grad,) = torch.autograd.grad(box.sum(), [x])
    assert torch.equal(grad, torch.ones(2))
    assert l2l.magic_box(3.0) == 3.0
    clones = l2l.clone_parameters([x])
    assert clones[0] is not x and torch.equal(clones[0], x) and clones[0].grad_fn is not None
    loc = torch.zeros(2, requires_grad=True)
    normal = torch.distributions.Normal(loc, torch.ones(2))
    twin = l2l.clone_distribution(normal)
    assert twin.loc is not normal.loc
    (grad,) = torch.autograd.grad(twin.log_prob(torch.ones(2)).sum(), [loc])
    assert torch.equal(grad, torch.ones(2))
    assert not l2l.detach_distribution(twin).loc.requires_grad
    predictions = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert l2l.accuracy(predictions, torch.tensor([1, 1, 1])).item() == pytest.approx(2 / 3)


def test_the_namespace_names_what_it_does_not_provide():
    with pytest.raises(AttributeError, match=r"does not provide learn2learn\.gym"):
        _ = l2l.gym
    with pytest.raises(AttributeError, match="get_tasksets"):
        _ = l2l.vision.datasets
