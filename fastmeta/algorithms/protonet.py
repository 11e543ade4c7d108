"""Prototypical Networks (Snell et al. 2017): classify queries by distance to class means.

Each task embeds its support and query images in one encoder call (so BatchNorm statistics are
the episode's, as in the paper's code: :class:`~fastmeta.algorithms.metric.MetricLearner`),
averages the support embeddings of each class into a
prototype, and scores queries by negative squared Euclidean distance (or scaled cosine
similarity) to the prototypes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.metric import MetricLearner, task_ways
from fastmeta.algorithms.options import ProtoNetOptions
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig


def prototype_logits(
    support: Tensor,
    support_y: Tensor,
    query: Tensor,
    ways: int,
    distance: str,
    scale: float | Tensor,
) -> Tensor:
    """Logits ``[..., Q, ways]`` of query embeddings ``[..., Q, D]`` against the class means of
    support embeddings ``[..., S, D]`` (labels ``support_y [..., S]``)."""
    one_hot = F.one_hot(support_y, ways).to(support.dtype)  # [..., S, ways]
    prototypes = (one_hot.mT @ support) / one_hot.sum(-2).unsqueeze(-1)
    if distance == "cosine":
        return scale * F.normalize(query, dim=-1) @ F.normalize(prototypes, dim=-1).mT
    squared = (query.unsqueeze(-2) - prototypes.unsqueeze(-3)).pow(2).sum(-1)
    return -scale * squared


class PrototypicalNetwork(MetricLearner):
    """Metric-based few-shot classifier over any embedding network.

    Args:
        encoder: maps images ``[N, ...]`` to embeddings ``[N, D]``.
        distance: ``"squared_euclidean"`` (the paper) or ``"cosine"``.
        scale: multiplies the logits (a temperature; 1 for the paper's Euclidean setting).
        learn_scale: meta-learn the factor, starting at ``scale`` (Meta-Baseline's learnable
            temperature, Chen et al. 2021, with cosine distance and ``scale=10``).
        strategy, chunk_size: how tasks of a batch run (see :func:`map_tasks`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        distance: Literal["squared_euclidean", "cosine"] = "squared_euclidean",
        scale: float = 1.0,
        strategy: str = "auto",
        chunk_size: int | None = None,
        learn_scale: bool = False,
    ) -> None:
        super().__init__(encoder, strategy, chunk_size)
        if distance not in ("squared_euclidean", "cosine"):
            raise ValueError(f"distance must be 'squared_euclidean' or 'cosine', got {distance!r}")
        self.distance = distance
        self.scale: float | nn.Parameter = (
            nn.Parameter(torch.tensor(float(scale))) if learn_scale else scale
        )

    def forward(self, batch: TaskBatch) -> MetaOutput:
        support, query = self.embed(batch)
        logits = prototype_logits(
            support, batch.support_y, query, task_ways(batch), self.distance, self.scale
        )
        losses = F.cross_entropy(logits.mT, batch.query_y, reduction="none").mean(1)
        return MetaOutput.from_tasks(losses, logits, batch.query_y)

    def task_classifier(self, support_x: Tensor, support_y: Tensor) -> nn.Module:
        """A module scoring query images against this support set (for export)."""
        encoder = copy.deepcopy(self.encoder).eval()
        ways = int(support_y.max()) + 1
        scale = self.scale.detach().item() if isinstance(self.scale, Tensor) else self.scale
        return PrototypeClassifier(encoder, support_x, support_y, ways, self.distance, scale)


class PrototypeClassifier(nn.Module):
    """Logits from distances to the support class means; the support images are embedded with
    each batch of queries, as in training."""

    def __init__(
        self, encoder: nn.Module, support_x: Tensor, support_y: Tensor, ways: int,
        distance: str, scale: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = encoder
        self.support_x: Tensor  # buffers, registered below
        self.support_y: Tensor
        self.register_buffer("support_x", support_x)
        self.register_buffer("support_y", support_y)
        self.ways, self.distance, self.scale = ways, distance, scale

    def forward(self, x: Tensor) -> Tensor:
        shots = self.support_x.shape[0]
        embedded = self.encoder(torch.cat([self.support_x, x]))
        return prototype_logits(
            embedded[:shots], self.support_y, embedded[shots:], self.ways, self.distance,
            self.scale,
        )  # fmt: skip


def build_protonet(
    settings: AlgorithmConfig,
    options: ProtoNetOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> PrototypicalNetwork:
    """Prototypical Networks from a run's ``algorithm`` section; ``model`` is the embedding
    network."""
    return PrototypicalNetwork(
        model, options.distance, options.scale, settings.strategy, settings.chunk_size,
        options.learn_scale,
    )  # fmt: skip
