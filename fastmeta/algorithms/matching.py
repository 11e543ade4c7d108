"""Matching Networks (Vinyals et al. 2016): attention over the support set.

Each task embeds its support and query images in one encoder call. A query's class
distribution is an attention-weighted sum of the support labels, the attention being a softmax
over its cosine similarities to the support embeddings:
``P(y = k | x) = sum_i softmax_i(scale * cos(f(x), g(x_i))) [y_i = k]``. The meta-loss is the
negative log of that probability for the true class.

Full context embeddings (the LSTMs that condition ``f`` and ``g`` on the whole support set)
are not implemented: ``f = g`` is the encoder. The paper used them on mini-ImageNet only; its
Omniglot results are without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


def matching_log_probs(
    support: Tensor, support_y: Tensor, query: Tensor, ways: int, scale: float = 1.0
) -> Tensor:
    """Log class probabilities ``[..., Q, ways]`` of cosine attention over the support set.

    ``support [..., S, D]``, ``support_y [..., S]``, ``query [..., Q, D]``. The log of the
    attention mass on class ``k`` is computed as a log-sum-exp over that class's support
    examples minus one over all of them, so it stays finite where the probability is tiny.
    """
    similarity = scale * F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(-1, -2)
    in_class = F.one_hot(support_y, ways).bool().unsqueeze(-3)  # [..., 1, S, ways]
    masked = similarity.unsqueeze(-1).masked_fill(~in_class, -torch.inf)
    return torch.logsumexp(masked, dim=-2) - torch.logsumexp(similarity, dim=-1, keepdim=True)


class MatchingNetwork(MetaLearner):
    """Attention-based few-shot classifier over any embedding network.

    Args:
        encoder: maps images ``[N, ...]`` to embeddings ``[N, D]``.
        scale: multiplies the cosine similarities before the softmax (1 in the paper; a larger
            value sharpens the attention).
        strategy, chunk_size: how tasks of a batch are embedded (see :func:`map_tasks`).
    """

    independent_tasks = True

    def __init__(
        self,
        encoder: nn.Module,
        scale: float = 1.0,
        strategy: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        check_strategy(strategy)
        self.encoder = encoder
        self.scale = scale
        self.strategy = strategy
        self.chunk_size = chunk_size

    def forward(self, batch: TaskBatch) -> MetaOutput:
        ways = int(batch.support_y.max()) + 1
        support_size = batch.support_x.shape[1]
        params, buffers = module_state(self.encoder)

        def embed(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
            return functional_forward(self.encoder, params, buffers, torch.cat([sx, qx]))

        embedded = map_tasks(embed, batch, self.strategy, self.chunk_size)
        support, query = embedded[:, :support_size], embedded[:, support_size:]
        log_probs = matching_log_probs(support, batch.support_y, query, ways, self.scale)
        losses = F.nll_loss(log_probs.transpose(1, 2), batch.query_y, reduction="none").mean(1)
        return MetaOutput.from_tasks(losses, log_probs, batch.query_y)


@dataclass(frozen=True)
class MatchingOptions:
    """``algorithm.options`` of ``matching``: the factor on cosine similarities (1 = paper)."""

    scale: float = 1.0


def build_matching(config: RunConfig, model: nn.Module, options: Any) -> MatchingNetwork:
    """Matching Networks from a run config; ``model`` is the embedding network."""
    a = config.algorithm
    return MatchingNetwork(model, options.scale, strategy=a.strategy, chunk_size=a.chunk_size)


register(
    AlgorithmSpec(
        "matching",
        build_matching,
        options=MatchingOptions,
        model_output="embedding",
        description="Matching Networks: cosine attention over the support (Vinyals et al. 2016)",
    )
)
