"""Every execution path of the engine computes the reference meta-gradient (float64).

Paths: a loop over tasks (BatchNorm with torch's fused affine), vmap over the batch and over
chunks (BatchNorm affine by hand), ``auto`` as it resolves on this device, and chunked
``accumulate_gradients`` (a backward per chunk); all against a plain per-task autograd loop.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastmeta.algorithms.maml import MAML
from fastmeta.functional import batched
from fastmeta.functional.batched import plan
from fastmeta.functional.optimizers import Adam
from fastmeta.models import Conv4
from tests.reference import meta_gradient, random_classification_batch

PATHS = [
    pytest.param("loop", None, None, id="loop"),
    pytest.param("vmap", None, None, id="vmap"),
    pytest.param("vmap", 2, None, id="vmap-chunks"),
    pytest.param("auto", None, None, id="auto"),
    pytest.param("loop", None, 2, id="loop-backward-per-chunk"),
    pytest.param("vmap", None, 3, id="vmap-backward-per-chunk"),
]


def engine_gradient(model: nn.Module, batch, strategy, chunk_size, backward_chunk, **kwargs):
    maml = MAML(model, strategy=strategy, chunk_size=chunk_size, **kwargs)
    maml.zero_grad()
    maml.accumulate_gradients(batch, backward_chunk)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("strategy,chunk_size,backward_chunk", PATHS)
@pytest.mark.parametrize("first_order,steps", [(False, 2), (True, 1)])
def test_path_matches_reference(float64, strategy, chunk_size, backward_chunk, first_order, steps):
    torch.manual_seed(steps)
    model = Conv4(1, 3, hidden=4, blocks=2)
    batch = random_classification_batch(tasks=8, shape=(1, 6, 6), seed=steps)  # auto: vmap
    expected = meta_gradient(model, batch, 0.3, steps, first_order)
    actual = engine_gradient(
        model, batch, strategy, chunk_size, backward_chunk,
        lr=0.3, steps=steps, first_order=first_order,
    )  # fmt: skip
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("elements_per_call", [400, 1], ids=["vmap-chunks-of-2", "loop"])
def test_auto_backward_per_planned_chunk_matches_reference(float64, monkeypatch, elements_per_call):
    """With no chunk size, ``auto`` on a CPU back-propagates each planned chunk (each task
    when it loops); the gradient is still the whole batch's."""
    monkeypatch.setattr(batched, "CPU_ELEMENTS_PER_CALL", elements_per_call)
    monkeypatch.setattr(batched, "CPU_MIN_VMAP_TASKS", 2)
    torch.manual_seed(0)
    model = Conv4(1, 3, hidden=4, blocks=2)
    batch = random_classification_batch(tasks=5, shape=(1, 4, 4), seed=0)  # 192 elements a task
    expected = meta_gradient(model, batch, 0.3, 2, False)
    maml = MAML(model, lr=0.3, steps=2, strategy="auto")
    maml.task_flops(batch)  # counted on one task once, before the calls recorded below
    chunk_sizes: list[int] = []
    run = maml.run
    monkeypatch.setattr(
        maml, "run", lambda b, **kw: chunk_sizes.append(b.num_tasks) or run(b, **kw)
    )
    maml.accumulate_gradients(batch, None)
    assert chunk_sizes == ([2, 2, 1] if elements_per_call == 400 else [1] * 5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-9, atol=1e-11, msg=name)


def test_auto_resolves_both_ways_on_this_cpu():
    """The two concrete paths ``auto`` takes on a CPU are both exercised above."""
    small = random_classification_batch(tasks=8)
    large = random_classification_batch(tasks=2, shape=(3, 84, 84), queries=15)
    assert plan("auto", small).strategy == "vmap"
    assert plan("auto", large).strategy == "loop"


class TrackedNorm(nn.Module):
    """Conv + batch norm with running statistics, called through ``F.batch_norm``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.weight = nn.Parameter(torch.ones(4))
        self.bias = nn.Parameter(torch.zeros(4))
        self.register_buffer("running_mean", torch.zeros(4))
        self.register_buffer("running_var", torch.ones(4))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.batch_norm(
            self.conv(x), self.running_mean, self.running_var, self.weight, self.bias, True
        )
        return self.head(h.mean(dim=(-2, -1)))


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_tasks_leave_running_statistics_alone(strategy):
    """Neither BatchNorm path may update shared running statistics from a task."""
    torch.manual_seed(0)
    model = TrackedNorm()
    MAML(model, lr=0.1, steps=2, strategy=strategy)(random_classification_batch()).loss.backward()
    assert torch.equal(model.running_mean, torch.zeros(4))
    assert torch.equal(model.running_var, torch.ones(4))
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("inner_optimizer", [None, Adam(betas=(0.0, 0.999))], ids=["sgd", "adam"])
@pytest.mark.parametrize("first_order", [False, True])
def test_checkpointed_inner_steps_match_reference(float64, inner_optimizer, first_order):
    torch.manual_seed(3)
    model = Conv4(1, 3, hidden=4, blocks=2)
    batch = random_classification_batch(tasks=3, shape=(1, 6, 6), seed=3)
    kwargs = dict(lr=0.3, steps=3, first_order=first_order, inner_optimizer=inner_optimizer)
    expected = engine_gradient(model, batch, "loop", None, None, **kwargs)
    if inner_optimizer is None:  # and plain SGD against the independent per-task loop
        reference = meta_gradient(model, batch, 0.3, 3, first_order)
        for name in reference:
            torch.testing.assert_close(expected[name], reference[name], rtol=1e-9, atol=1e-11)
    actual = engine_gradient(
        model, batch, "auto", None, None, checkpoint_inner_steps=True, **kwargs
    )
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-9, atol=1e-11, msg=name)


def saved_elements(maml: MAML, batch) -> int:
    """Elements of the tensors autograd keeps for the backward of one meta-loss."""
    count = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        count[0] += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        maml(batch)
    return count[0]


def test_checkpointing_keeps_far_less_for_the_backward_and_refuses_vmap():
    torch.manual_seed(0)
    batch = random_classification_batch(tasks=1, shape=(1, 16, 16))
    model = Conv4(1, 3, hidden=8)
    kept = saved_elements(MAML(model, steps=8, strategy="loop"), batch)
    checkpointed = saved_elements(MAML(model, steps=8, checkpoint_inner_steps=True), batch)
    assert checkpointed < kept / 3
    with pytest.raises(ValueError, match="use strategy='loop' or 'auto'"):
        MAML(model, strategy="vmap", checkpoint_inner_steps=True)
