"""Prototypical Networks (Snell et al. 2017): classify queries by distance to class means.

Each task embeds its support and query images in one encoder call (so BatchNorm statistics are
the episode's, as in the paper's code), averages the support embeddings of each class into a
prototype, and scores queries by negative squared Euclidean distance (or scaled cosine
similarity) to the prototypes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.algorithms.registry import AlgorithmSpec, register
from fastmeta.functional.batched import check_strategy, map_tasks
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import RunConfig


def prototype_logits(
    support: Tensor, support_y: Tensor, query: Tensor, ways: int, distance: str, scale: float
) -> Tensor:
    """Logits ``[Q, ways]`` of query embeddings against the class means of support embeddings."""
    one_hot = F.one_hot(support_y, ways).to(support.dtype)  # [S, ways]
    prototypes = (one_hot.T @ support) / one_hot.sum(0).unsqueeze(1)
    if distance == "cosine":
        return scale * F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).T
    squared = (query.unsqueeze(1) - prototypes.unsqueeze(0)).pow(2).sum(-1)
    return -scale * squared


class PrototypicalNetwork(MetaLearner):
    """Metric-based few-shot classifier over any embedding network.

    Args:
        encoder: maps images ``[N, ...]`` to embeddings ``[N, D]``.
        distance: ``"squared_euclidean"`` (the paper) or ``"cosine"``.
        scale: multiplies the logits (a temperature; 1 for the paper's Euclidean setting).
        strategy, chunk_size: how tasks of a batch run (see :func:`map_tasks`).
    """

    independent_tasks = True

    def __init__(
        self,
        encoder: nn.Module,
        distance: Literal["squared_euclidean", "cosine"] = "squared_euclidean",
        scale: float = 1.0,
        strategy: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if distance not in ("squared_euclidean", "cosine"):
            raise ValueError(f"distance must be 'squared_euclidean' or 'cosine', got {distance!r}")
        check_strategy(strategy)
        self.encoder = encoder
        self.distance = distance
        self.scale = scale
        self.strategy = strategy
        self.chunk_size = chunk_size

    def forward(self, batch: TaskBatch) -> MetaOutput:
        ways = int(batch.support_y.max()) + 1
        params, buffers = module_state(self.encoder)
        shots = batch.support_x.shape[1]

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            embedded = functional_forward(self.encoder, params, buffers, torch.cat([sx, qx]))
            logits = prototype_logits(
                embedded[:shots], sy, embedded[shots:], ways, self.distance, self.scale
            )
            return F.cross_entropy(logits, qy), logits

        losses, logits = map_tasks(task_fn, batch, self.strategy, self.chunk_size)
        return MetaOutput.from_tasks(losses, logits, batch.query_y)


def build_protonet(config: RunConfig, model: nn.Module, options: Any) -> PrototypicalNetwork:
    """Prototypical Networks from a run config; ``model`` is the embedding network."""
    a = config.algorithm
    return PrototypicalNetwork(model, a.distance, strategy=a.strategy, chunk_size=a.chunk_size)


register(
    AlgorithmSpec(
        "protonet",
        build_protonet,
        model_output="embedding",
        description="Prototypical Networks: nearest class mean in an embedding (Snell et al. 2017)",
    )
)
