"""Matching Networks (Vinyals et al. 2016): attention over the support set.

Each task embeds its support and query images in one encoder call. A query's class
distribution is an attention-weighted sum of the support labels, the attention being a softmax
over its cosine similarities to the support embeddings:
``P(y = k | x) = sum_i softmax_i(scale * cos(f(x), g(x_i))) [y_i = k]``. The meta-loss is the
negative log of that probability for the true class.

Without full context embeddings (the default) ``f = g`` is the encoder. With them
(:class:`FullContextEmbedding`, the paper's Appendix A) ``g`` runs a bidirectional LSTM over the
support embeddings and ``f`` an attention LSTM that reads the support ``K`` times, so both
depend on the whole support set. The paper used them on mini-ImageNet; its Omniglot results are
without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.metric import MetricLearner, task_ways
from fastmeta.algorithms.options import DEFAULT_FCE_STEPS, MatchingOptions
from fastmeta.models.shapes import embedding_size
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig


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


def check_fce_steps(steps: int) -> None:
    """Raise ``ValueError`` unless the query attention LSTM gets at least one step."""
    if steps < 1:
        raise ValueError(f"fce_steps (the query LSTM's processing steps) must be >= 1, got {steps}")


class FullContextEmbedding(nn.Module):
    """The paper's full context embeddings ``g(x_i, S)`` and ``f(x, S)`` (Appendix A.1, A.2).

    Given encoder embeddings ``g'(x_i)`` of the support and ``f'(x)`` of the queries, all of
    size ``D``, with ``sigma`` the logistic function:

    * support: a bidirectional LSTM (hidden size ``D``, zero initial states) runs over
      ``g'(x_1), ..., g'(x_S)`` in the support's order, and
      ``g(x_i) = h_fwd_i + h_bwd_i + g'(x_i)``;
    * queries: with ``h_0 = c_0 = 0``, for ``k = 1..K``::

          r_{k-1} = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i)
          z = W [f'(x); h_{k-1}; r_{k-1}] + b                        (4D gate pre-activations)
          c_k = sigma(z_f) * c_{k-1} + sigma(z_i) * tanh(z_g)
          h_k = sigma(z_o) * tanh(c_k) + f'(x)

      and ``f(x) = h_K``. This is the paper's ``LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1})``
      plus skip connection, with ``r_0`` read by ``h_0 = 0`` (the mean of ``g``). It is
      computed by an ``nn.LSTMCell(2D, D)`` given the input ``[f'(x); r_{k-1}]`` and the hidden
      state ``h_{k-1}``: its ``W_ih [f'(x); r] + W_hh h`` is ``W`` applied to the
      concatenation.

    Tasks form the LSTM batch: ``support [B, S, D]`` and ``query [B, Q, D]``; each query
    attends only to its own task's support, so tasks stay independent of each other.
    """

    def __init__(self, dim: int, steps: int = DEFAULT_FCE_STEPS) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"the full context embeddings' size must be >= 1, got {dim}")
        check_fce_steps(steps)
        self.dim = dim
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)

    def forward(self, support: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        """``(g(support) [B, S, D], f(query) [B, Q, D])``."""
        if support.shape[-1] != self.dim or query.shape[-1] != self.dim:
            raise ValueError(
                f"the encoder's embeddings have size {support.shape[-1]} but the full context "
                f"embeddings were built for {self.dim}; set fce_dim={support.shape[-1]}"
            )
        both_ways, _ = self.support_lstm(support)  # [B, S, 2D]: forward then backward states
        g = both_ways[..., : self.dim] + both_ways[..., self.dim :] + support
        tasks, queries, dim = query.shape
        x = query.reshape(tasks * queries, dim)
        h, c = torch.zeros_like(x), torch.zeros_like(x)
        for _ in range(self.steps):
            attention = torch.softmax(h.view(tasks, queries, dim) @ g.transpose(1, 2), dim=-1)
            r = (attention @ g).reshape(tasks * queries, dim)
            h, c = self.query_cell(torch.cat([x, r], dim=-1), (h, c))
            h = h + x
        return g, h.view(tasks, queries, dim)


class MatchingNetwork(MetricLearner):
    """Attention-based few-shot classifier over any embedding network.

    Args:
        encoder: maps images ``[N, ...]`` to embeddings ``[N, D]``.
        scale: multiplies the cosine similarities before the softmax (1 in the paper; a larger
            value sharpens the attention).
        strategy, chunk_size: how tasks of a batch are embedded (see :func:`map_tasks`).
        fce_dim: the encoder's embedding size ``D`` to add full context embeddings
            (:class:`FullContextEmbedding`); ``None`` (default) leaves ``f = g`` the encoder and
            adds no parameters.
        fce_steps: processing steps ``K`` of the query attention LSTM (with ``fce_dim`` only).
    """

    def __init__(
        self,
        encoder: nn.Module,
        scale: float = 1.0,
        strategy: str = "auto",
        chunk_size: int | None = None,
        fce_dim: int | None = None,
        fce_steps: int = DEFAULT_FCE_STEPS,
    ) -> None:
        super().__init__(encoder, strategy, chunk_size)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        check_fce_steps(fce_steps)
        self.scale = scale
        self.fce = None if fce_dim is None else FullContextEmbedding(fce_dim, fce_steps)

    def forward(self, batch: TaskBatch) -> MetaOutput:
        support, query = self.embed(batch)
        if self.fce is not None:
            support, query = self.fce(support, query)
        ways = task_ways(batch)
        log_probs = matching_log_probs(support, batch.support_y, query, ways, self.scale)
        losses = F.nll_loss(log_probs.transpose(1, 2), batch.query_y, reduction="none").mean(1)
        return MetaOutput.from_tasks(losses, log_probs, batch.query_y)


def build_matching(
    settings: AlgorithmConfig,
    options: MatchingOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> MatchingNetwork:
    """Matching Networks from a run's ``algorithm`` section; ``model`` is the embedding network
    (its embedding size, found by running it, sizes the full context embeddings)."""
    fce_dim = embedding_size(model, input_shape) if options.fce else None
    return MatchingNetwork(
        model, options.scale, strategy=settings.strategy, chunk_size=settings.chunk_size,
        fce_dim=fce_dim, fce_steps=options.fce_steps,
    )  # fmt: skip
