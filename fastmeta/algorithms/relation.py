"""Relation Networks (Sung et al. 2018): a learned similarity between feature maps.

Each task embeds its support and query images in one encoder call into feature maps
``[C, H, W]``; the maps of each class's support examples are summed into one class map. Every
(query, class) pair is concatenated along channels and scored by the relation module (two conv
blocks, then two fully connected layers) with a sigmoid. As in the paper, training regresses
the scores onto the one-hot labels with a mean squared error; ``loss="cross_entropy"`` treats
the pre-sigmoid scores as logits instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.metric import MetricLearner, task_ways
from fastmeta.algorithms.registry import AlgorithmSpec, register
from fastmeta.functional.batched import map_tasks
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import RunConfig

RelationLoss = Literal["mse", "cross_entropy"]


def _conv_block(in_channels: int, out_channels: int, padding: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=padding),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def relation_encoder(in_channels: int = 1, hidden: int = 64) -> nn.Sequential:
    """The paper's embedding module: four 3x3 conv blocks (BatchNorm, ReLU), the first two
    unpadded and max-pooled, the last two padded and not pooled (28x28 -> ``[hidden, 5, 5]``).
    BatchNorm uses batch statistics, as the library's Conv4 does."""
    return nn.Sequential(
        _conv_block(in_channels, hidden, padding=0, pool=True),
        _conv_block(hidden, hidden, padding=0, pool=True),
        _conv_block(hidden, hidden, padding=1, pool=False),
        _conv_block(hidden, hidden, padding=1, pool=False),
    )


class RelationModule(nn.Module):
    """Scores concatenated feature-map pairs ``[N, 2C, H, W] -> [N]`` (pre-sigmoid).

    Two padded conv blocks, each max-pooled (the paper's 5x5 maps become 1x1), a spatial mean
    (so larger maps also work), then ``hidden -> fc_hidden -> 1`` with a ReLU between.
    """

    def __init__(self, feature_channels: int, hidden: int = 64, fc_hidden: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(2 * feature_channels, hidden, padding=1, pool=True),
            _conv_block(hidden, hidden, padding=1, pool=True),
        )
        self.fc = nn.Sequential(nn.Linear(hidden, fc_hidden), nn.ReLU(), nn.Linear(fc_hidden, 1))

    def forward(self, pairs: Tensor) -> Tensor:
        if pairs.shape[-1] < 4 or pairs.shape[-2] < 4:
            raise ValueError(
                "the relation module max-pools twice and needs feature maps of at least 4x4; got "
                f"{tuple(pairs.shape[-2:])}: use an encoder that downsamples less"
            )
        return self.fc(self.features(pairs).mean(dim=(-2, -1))).squeeze(-1)


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
        losses, scores = map_tasks(task_fn, maps, self.strategy, self.chunk_size)
        return MetaOutput.from_tasks(losses, scores, batch.query_y)


@dataclass(frozen=True)
class RelationOptions:
    """``algorithm.options`` of ``relation``: the loss, and the relation module's widths."""

    loss: RelationLoss = "mse"
    hidden: int = 64
    fc_hidden: int = 8


def feature_channels(encoder: nn.Module) -> int:
    """Channels of ``encoder``'s output map: those of its last 2-D convolution."""
    convolutions = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError("the Relation Network's encoder has no Conv2d to read its channels from")
    return convolutions[-1].out_channels


def build_relation(config: RunConfig, model: nn.Module, options: Any) -> RelationNetwork:
    """Relation Networks from a run config; ``model`` returns feature maps."""
    a = config.algorithm
    relation = RelationModule(feature_channels(model), options.hidden, options.fc_hidden)
    return RelationNetwork(model, relation, options.loss, a.strategy, a.chunk_size)


register(
    AlgorithmSpec(
        "relation",
        build_relation,
        options=RelationOptions,
        model_output="feature_map",
        description="Relation Networks: learned relation module on feature maps (Sung et al. 2018)",
    )
)
