"""The checkpointing and precision benchmarks measure what they say: equal gradients with and
without checkpointing, float32 at the reference and bf16 visibly off it."""

from __future__ import annotations

import dataclasses

import torch

from benchmarks import bench_precision
from benchmarks.bench_checkpoint import measure as measure_checkpointing


def test_checkpointing_rows_have_equal_gradients_and_both_settings():
    rows = measure_checkpointing(steps=2, meta_batch=1, queries=1, rounds=1, seconds=0.01)
    assert [r["activations"] for r in rows] == ["kept", "checkpointed"]
    assert all(r["relative_gradient_difference"] < 1e-6 for r in rows)
    assert all(r["tasks_per_s"] > 0 for r in rows)


def test_precision_rows_compare_with_the_float64_reference():
    config = dataclasses.replace(bench_precision.WORKLOADS[0], meta_batch=2)
    rows = bench_precision.measure(config, torch.device("cpu"), 1, 0.01)
    by_mode = {r["precision"]: r for r in rows}
    assert set(by_mode) == {"float32", "bf16"}  # tf32 only on CUDA
    assert by_mode["float32"]["relative_gradient_error"] < 1e-4
    assert by_mode["bf16"]["relative_gradient_error"] > 1e-3
