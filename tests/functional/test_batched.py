"""map_tasks: vmap, loop and chunked execution give the same results."""

from __future__ import annotations

import pytest
import torch

from fastmeta.functional.batched import map_tasks, resolve_strategy
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


def test_auto_strategy_loops_on_cpu_images_and_vmaps_flat_features():
    assert resolve_strategy("auto", random_classification_batch()) == "loop"
    assert resolve_strategy("auto", random_regression_batch()) == "vmap"
    with pytest.raises(ValueError, match="choose one of auto, vmap, loop"):
        resolve_strategy("fast", random_regression_batch())
