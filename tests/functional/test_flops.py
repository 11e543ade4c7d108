"""The flop count behind ``"auto"``: torch's formulas for matrix products and convolutions."""

from __future__ import annotations

import torch

from fastmeta.algorithms import MAML
from fastmeta.functional.flops import FlopCount
from fastmeta.models import MLP
from tests.reference import random_regression_batch


def test_counts_a_matrix_product_and_a_convolution() -> None:
    with FlopCount() as counter:
        torch.randn(4, 3) @ torch.randn(3, 5)
    assert counter.total == 2 * 4 * 3 * 5
    conv = torch.nn.Conv2d(2, 6, 3, bias=False)
    with torch.no_grad(), FlopCount() as counter:
        conv(torch.randn(1, 2, 8, 8))
    assert counter.total == 2 * 6 * 2 * 9 * 6 * 6


def test_a_learners_task_is_counted_once_per_shape_and_leaves_no_trace() -> None:
    torch.manual_seed(0)
    maml = MAML(MLP(1, [8], 1), lr=0.1, steps=2)
    batch = random_regression_batch(tasks=3)
    state = torch.get_rng_state()
    flops = maml.task_flops(batch)
    assert flops is not None and flops > 0
    assert torch.equal(torch.get_rng_state(), state) and maml.training
    assert maml.task_flops(batch.slice(0, 2)) == flops  # the same task shape: counted once
    assert MAML(MLP(1, [8], 1), strategy="loop").task_flops(batch) is None
