"""MetaLearner.accumulate_gradients: the backward it picks by default changes nothing.

For every registered algorithm, ``accumulate_gradients(batch, None)`` (which, for learners whose
tasks are independent, back-propagates per planned chunk or per task on a CPU) leaves the same
gradients and the same parameters and buffers as one backward over the whole batch (float64).
"""

from __future__ import annotations

import pytest
import torch

from fastmeta.algorithms.registry import algorithm_specs
from fastmeta.config import apply_overrides
from fastmeta.functional import batched
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch

WAYS, SHOTS, QUERIES, TASKS, CLASSES = 3, 1, 2, 5, 12
IMAGE = (1, 28, 28)


def episodes(dtype: torch.dtype = torch.float64) -> TaskBatch:
    g = torch.Generator().manual_seed(0)

    def part(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(TASKS, WAYS * per_class, *IMAGE, generator=g, dtype=dtype)
        return x, torch.arange(WAYS).repeat_interleave(per_class).repeat(TASKS, 1)

    classes = torch.stack([torch.randperm(CLASSES, generator=g)[:WAYS] for _ in range(TASKS)])
    return TaskBatch(*part(SHOTS), *part(QUERIES), classes=classes)


def build(name: str):
    config = apply_overrides(RunConfig(), [
        f"algorithm.name={name}", "algorithm.inner_lr=0.1", "model.name=conv4", "model.hidden=4",
        f"sampler.ways={WAYS}", f"sampler.shots={SHOTS}", f"sampler.queries={QUERIES}",
        f"sampler.meta_batch={TASKS}",
    ])  # fmt: skip
    torch.manual_seed(0)
    algorithm = build_algorithm(config, build_model(config, IMAGE), CLASSES).double()
    algorithm.start_step(3, 10)
    return algorithm


@pytest.mark.parametrize("elements_per_call", [15_000, 1], ids=["vmap-chunks-of-2", "loop"])
@pytest.mark.parametrize("name", sorted(algorithm_specs()))
def test_default_backward_equals_one_backward_over_the_batch(monkeypatch, name, elements_per_call):
    monkeypatch.setattr(batched, "CPU_ELEMENTS_PER_CALL", elements_per_call)  # 7,056 a task
    monkeypatch.setattr(batched, "CPU_MIN_VMAP_TASKS", 1)
    default, whole = build(name), build(name)
    for algorithm, chunk_size in ((default, None), (whole, TASKS)):
        torch.manual_seed(1)  # Reptile draws its mini-batches from the global generator
        algorithm.accumulate_gradients(episodes(), chunk_size)
    for (key, a), b in zip(default.state_dict().items(), whole.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    for (key, a), b in zip(default.named_parameters(), whole.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), key
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=key)


def test_independent_learners_back_propagate_per_chunk_by_default(monkeypatch):
    monkeypatch.setattr(batched, "CPU_ELEMENTS_PER_CALL", 1)
    independent = [n for n in algorithm_specs() if build(n).independent_tasks]
    assert {"maml", "protonet", "imaml"} <= set(independent)
    assert build("maml").default_backward_chunk(episodes()) == 1
    assert build("mamlpp").default_backward_chunk(episodes()) is None  # running statistics


@pytest.mark.parametrize("name", ["protonet", "maml"])
def test_planning_under_bf16_autocast_leaves_every_weight_its_gradient(name):
    """The flop count that plans ``auto`` runs without gradients inside the step's autocast; a
    bf16 weight cached there had no gradient on torch 2.4 (.ci/oldest-torch runs this)."""
    algorithm = build(name).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        algorithm.accumulate_gradients(episodes(torch.float32), None)
    missing = [key for key, p in algorithm.named_parameters() if p.grad is None]
    assert not missing
