"""map_tasks: vmap, loop and chunked execution give the same results."""

from __future__ import annotations

import pytest
import torch

from fastmeta.functional.batched import (
    CPU_ELEMENTS_PER_CALL,
    CPU_MIN_VMAP_TASKS,
    Plan,
    backward_chunk,
    map_tasks,
    plan,
)
from fastmeta.tasks import TaskBatch
from tests.reference import random_classification_batch, random_regression_batch


def per_task(sx, sy, qx, qy):
    return {"sum": sx.sum() + qx.sum(), "pair": (sx.mean(0), qy.float())}


@pytest.mark.parametrize(
    "strategy,chunk", [("vmap", None), ("vmap", 2), ("loop", 2), ("loop", None)]
)
def test_strategies_agree(strategy, chunk):
    batch = random_classification_batch(tasks=5)
    expected = {
        "sum": torch.stack([t.support_x.sum() + t.query_x.sum() for t in batch]),
        "pair": (batch.support_x.mean(1), batch.query_y.float()),
    }
    out = map_tasks(per_task, batch, strategy, chunk)
    torch.testing.assert_close(out["sum"], expected["sum"])
    torch.testing.assert_close(out["pair"][0], expected["pair"][0])
    torch.testing.assert_close(out["pair"][1], expected["pair"][1])


def omniglot_shaped(tasks: int, queries: int, device: str = "cpu") -> TaskBatch:
    """5-way 1-shot 28x28 tasks; only shapes and device matter to the plan."""
    support = torch.zeros(tasks, 5, 1, 28, 28, device=device)
    query = torch.zeros(tasks, 5 * queries, 1, 28, 28, device=device)
    labels = torch.zeros(tasks, 5, dtype=torch.long, device=device)
    return TaskBatch(support, labels, query, labels.repeat(1, queries))


def test_auto_on_cpu_vmaps_chunks_that_fit_the_element_budget():
    batch = omniglot_shaped(128, 1)
    per_task = 28 * 28 * 5 * 2
    chosen = plan("auto", batch)
    assert chosen.strategy == "vmap"
    assert chosen.chunk_size * per_task <= CPU_ELEMENTS_PER_CALL
    assert (chosen.chunk_size + 1) * per_task > CPU_ELEMENTS_PER_CALL
    assert plan("auto", batch, chunk_size=12) == Plan("vmap", 12)


def test_auto_on_cpu_loops_over_fewer_tasks_than_pay_for_vmap():
    assert plan("auto", omniglot_shaped(CPU_MIN_VMAP_TASKS, 1)).strategy == "vmap"
    assert plan("auto", omniglot_shaped(CPU_MIN_VMAP_TASKS - 1, 1)) == Plan("loop", None)
    assert plan("auto", omniglot_shaped(128, 1), chunk_size=2) == Plan("loop", 2)


def test_auto_on_cpu_loops_over_tasks_too_big_to_batch():
    assert plan("auto", omniglot_shaped(32, 15)) == Plan("loop", None)
    per_example = CPU_ELEMENTS_PER_CALL // (2 * CPU_MIN_VMAP_TASKS - 1)
    batch = TaskBatch(
        torch.zeros(4, 1, per_example), torch.zeros(4, 1), torch.zeros(4, 1, per_example),
        torch.zeros(4, 1),
    )  # fmt: skip
    assert plan("auto", batch, chunk_size=3) == Plan("loop", 3)
    assert plan("auto", random_regression_batch(tasks=CPU_MIN_VMAP_TASKS)).strategy == "vmap"


def test_auto_vmaps_whole_chunks_off_the_cpu_and_explicit_choices_stand():
    assert plan("auto", omniglot_shaped(64, 15, device="meta")) == Plan("vmap", None)
    assert plan("loop", random_regression_batch(), 4) == Plan("loop", 4)
    assert plan("vmap", omniglot_shaped(64, 15)) == Plan("vmap", None)
    with pytest.raises(ValueError, match="choose one of auto, vmap, loop"):
        plan("fast", random_regression_batch())


def test_backward_chunk_follows_the_cpu_plan_and_keeps_explicit_choices():
    one_query = omniglot_shaped(128, 1)
    assert backward_chunk("auto", one_query) == plan("auto", one_query).chunk_size
    assert backward_chunk("auto", omniglot_shaped(32, 15)) == 1  # the loop: a backward per task
    assert backward_chunk("auto", one_query, chunk_size=5) == 5
    assert backward_chunk("vmap", one_query) is None
    assert backward_chunk("loop", omniglot_shaped(32, 15)) is None
    assert backward_chunk("auto", omniglot_shaped(64, 1, device="meta")) is None
