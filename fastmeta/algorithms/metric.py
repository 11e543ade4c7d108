"""The base of the learners that classify queries from embedded support sets (Prototypical,
Matching and Relation Networks, MetaOptNet): each task's support and query images go through
the encoder in one call, so batch-statistics BatchNorm sees the episode, as in their papers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaLearner
from fastmeta.functional.batched import check_strategy
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.tasks import TaskBatch


def task_ways(batch: TaskBatch) -> int:
    """The number of classes of the batch's tasks (labels are ``0..ways-1``)."""
    return int(batch.support_y.max()) + 1


class MetricLearner(MetaLearner):
    """A :class:`MetaLearner` over an embedding network ``encoder``; :meth:`embed` gives the
    support and query embeddings of every task of a batch."""

    independent_tasks = True

    def __init__(self, encoder: nn.Module, strategy: str, chunk_size: int | None) -> None:
        super().__init__()
        check_strategy(strategy)
        self.encoder = encoder
        self.strategy = strategy
        self.chunk_size = chunk_size

    def embed(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """``(support [B, S, ...], query [B, Q, ...])``: each task's images embedded in one
        encoder call."""
        params, buffers = module_state(self.encoder)
        support_size = batch.support_x.shape[1]

        def embed_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
            out: Tensor = functional_forward(self.encoder, params, buffers, torch.cat([sx, qx]))
            return out

        embedded = self.per_task(embed_task, batch)
        return embedded[:, :support_size], embedded[:, support_size:]
