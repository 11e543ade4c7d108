"""The MAML benchmark times only methods whose meta-gradient matches the float64 reference."""

from __future__ import annotations

import dataclasses

import torch

from benchmarks.bench_maml import run_config
from benchmarks.peers import Method, fastmeta_step, torch_func_step
from benchmarks.workloads import MamlConfig


def first_order_in_disguise(model, config):
    """A wrong implementation: first-order gradients where second order is asked for."""
    return torch_func_step(model, dataclasses.replace(config, first_order=True))


def failing(model, config):
    def step(batch):
        raise RuntimeError("out of memory")

    return step


def test_wrong_and_failing_methods_are_reported_not_timed():
    config = MamlConfig(first_order=False, steps=1, meta_batch=2, queries=1)
    methods = (
        Method("loop", fastmeta_step("loop", None)),
        Method("vmap", fastmeta_step("vmap", 1)),
        Method("wrong", first_order_in_disguise),
        Method("failing", failing),
    )
    rows = {r.method: r for r in run_config(config, methods, torch.device("cpu"), 1, 0.0)}
    for name in ("loop", "vmap"):
        assert rows[name].status == "ok" and rows[name].gradient_error < 1e-4
        assert rows[name].tasks_per_s > 0 and len(rows[name].rounds) == 1
    assert rows["wrong"].status == "refused" and rows["wrong"].gradient_error > 0.1
    assert rows["failing"].status == "failed" and "out of memory" in rows["failing"].note
    assert rows["wrong"].tasks_per_s is None and rows["failing"].tasks_per_s is None
