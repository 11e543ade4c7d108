"""TaskBatch shape checks, slicing and chunking."""

from __future__ import annotations

import pytest
import torch

from fastmeta.tasks import TaskBatch
from tests.reference import random_classification_batch


def test_chunks_cover_the_batch_in_order():
    batch = random_classification_batch(tasks=5)
    chunks = list(batch.chunks(2))
    assert [c.num_tasks for c in chunks] == [2, 2, 1]
    torch.testing.assert_close(torch.cat([c.support_x for c in chunks]), batch.support_x)
    assert list(batch.chunks(None)) == [batch]


def test_stack_inverts_iteration():
    batch = random_classification_batch(tasks=3)
    again = TaskBatch.stack(list(batch))
    for name in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(again, name), getattr(batch, name))


def test_mismatched_shapes_are_rejected_with_the_shapes():
    with pytest.raises(ValueError, match="leading task dimension"):
        TaskBatch(torch.zeros(2, 3, 1), torch.zeros(3, 3), torch.zeros(2, 1, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="support_y has 2"):
        TaskBatch(torch.zeros(2, 3, 1), torch.zeros(2, 2), torch.zeros(2, 1, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="chunk size"):
        list(random_classification_batch().chunks(0))
