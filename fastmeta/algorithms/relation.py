"""Relation Networks (Sung et al. 2018): a learned similarity between feature maps.

Each task embeds its support and query images in one encoder call into feature maps
``[C, H, W]``; the maps of each class's support examples are summed into one class map. Every
(query, class) pair is concatenated along channels and scored by the relation module (two conv
blocks, then two fully connected layers) with a sigmoid. As in the paper, training regresses
the scores onto the one-hot labels with a mean squared error; ``loss="cross_entropy"`` treats
the pre-sigmoid scores as logits instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.metric import MetricLearner, task_ways
from fastmeta.algorithms.options import RelationOptions
from fastmeta.functional.batched import map_tasks
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.models.relation import RelationModule
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig

RelationLoss = Literal["mse", "cross_entropy"]


class RelationNetwork(MetricLearner):
    """Few-shot classifier with a learned relation score.

    Args:
        encoder: maps images ``[N, ...]`` to feature maps ``[N, C, H, W]``.
        relation: scores concatenated ``[N, 2C, H, W]`` pairs (a :class:`RelationModule`).
        loss: ``"mse"`` of sigmoid scores against one-hot labels (the paper) or
            ``"cross_entropy"`` over the raw scores.
        strategy, chunk_size: how tasks of a batch run (see :func:`map_tasks`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        relation: nn.Module,
        loss: RelationLoss = "mse",
        strategy: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(encoder, strategy, chunk_size)
        if loss not in ("mse", "cross_entropy"):
            raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
        self.relation = relation
        self.loss = loss

    def forward(self, batch: TaskBatch) -> MetaOutput:
        support, query = self.embed(batch)
        if support.dim() != 5:
            raise ValueError(
                "the Relation Network's encoder must return feature maps [N, C, H, W]; got "
                f"shape {tuple(support.shape[1:])}"
            )
        ways = task_ways(batch)
        relation_state = module_state(self.relation)

        def task_fn(support: Tensor, sy: Tensor, query: Tensor, qy: Tensor) -> tuple[Tensor, ...]:
            one_hot = F.one_hot(sy, ways).to(support.dtype)
            classes = (one_hot.T @ support.flatten(1)).view(ways, *support.shape[1:])
            pairs = torch.cat(
                [
                    classes.unsqueeze(0).expand(len(query), -1, -1, -1, -1),
                    query.unsqueeze(1).expand(-1, ways, -1, -1, -1),
                ],
                dim=2,
            ).flatten(0, 1)
            scores = functional_forward(self.relation, *relation_state, pairs).view(-1, ways)
            if self.loss == "mse":
                scores = torch.sigmoid(scores)
                loss = F.mse_loss(scores, F.one_hot(qy, ways).to(scores.dtype))
            else:
                loss = F.cross_entropy(scores, qy)
            return loss, scores

        maps = TaskBatch(support, batch.support_y, query, batch.query_y)
        how = self.task_plan(batch)  # the images' plan, for their feature maps too
        losses, scores = map_tasks(task_fn, maps, how.strategy, how.chunk_size)
        return MetaOutput.from_tasks(losses, scores, batch.query_y)


def feature_channels(encoder: nn.Module) -> int:
    """Channels of ``encoder``'s output map: those of its last 2-D convolution."""
    convolutions = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError("the Relation Network's encoder has no Conv2d to read its channels from")
    return convolutions[-1].out_channels


def build_relation(
    settings: AlgorithmConfig,
    options: RelationOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> RelationNetwork:
    """Relation Networks from a run's ``algorithm`` section; ``model`` returns feature maps."""
    relation = RelationModule(feature_channels(model), options.hidden, options.fc_hidden)
    return RelationNetwork(model, relation, options.loss, settings.strategy, settings.chunk_size)
