"""Closed-form few-shot heads on any embedding network (MetaOptNet, Lee et al. 2019).

Each task embeds its support and query images in one encoder call, fits a linear classifier
to the support embeddings in closed form, and scores the queries with it; the meta-loss is the
cross-entropy of those scores, differentiated through the fit into the encoder.

- ``"r2d2"``: ridge regression to one-hot targets (Bertinetto et al. 2019), solved in the
  support-size dimension by the Woodbury identity, ``W = X^T (X X^T + lambda I)^-1 Y``, so the
  cost is that of an ``S x S`` system however wide the embedding.
- ``"svm"``: the Crammer-Singer multi-class SVM, through its dual QP (one variable per support
  example and class), solved by :func:`fastmeta.functional.qp.solve_qp` and differentiated
  implicitly.

Both scale their scores by a learned factor (the heads' outputs are small, and a softmax over
them would be nearly flat). Bertinetto et al. also learn a bias; a bias shared by all classes
leaves a softmax unchanged, so it is omitted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.metric import MetricLearner, task_ways
from fastmeta.algorithms.options import R2D2Options, SVMOptions
from fastmeta.functional.qp import solve_qp
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig

Head = Literal["r2d2", "svm"]


def ridge_regression_head(
    support: Tensor, support_y: Tensor, query: Tensor, ways: int, ridge: Tensor | float
) -> Tensor:
    """Query scores ``[B, Q, ways]`` of the ridge regression fitted to the support set.

    ``support [B, S, D]``, ``support_y [B, S]`` (class indices), ``query [B, Q, D]``. The weights
    ``W = X^T (X X^T + ridge I)^-1 Y`` are never formed: the scores are ``query X^T alpha``.
    """
    targets = F.one_hot(support_y, ways).to(support.dtype)
    gram = support @ support.transpose(-1, -2)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    alpha: Tensor = torch.linalg.solve(gram + ridge * eye, targets)
    return (query @ support.transpose(-1, -2)) @ alpha


def svm_dual(
    support: Tensor, support_y: Tensor, ways: int, C: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The Crammer-Singer dual as QP data ``(Q, p, G, h, A, b)`` for :func:`solve_qp`.

    Variables ``alpha[i, k]`` (flattened as ``i * ways + k``): minimise
    ``1/2 sum_k |sum_i alpha[i, k] x_i|^2 - sum_i alpha[i, y_i]`` subject to
    ``alpha[i, k] <= C [k == y_i]`` and ``sum_k alpha[i, k] = 0``; the class weights are then
    ``w_k = sum_i alpha[i, k] x_i``.
    """
    batch, size = support_y.shape
    n = size * ways
    dtype, device = support.dtype, support.device
    gram = support @ support.transpose(-1, -2)
    eye_ways = torch.eye(ways, dtype=dtype, device=device)
    Q = torch.einsum("bij,kl->bikjl", gram, eye_ways).reshape(batch, n, n)
    one_hot = F.one_hot(support_y, ways).to(dtype).reshape(batch, n)
    G = torch.eye(n, dtype=dtype, device=device).expand(batch, n, n)
    A = torch.kron(
        torch.eye(size, dtype=dtype, device=device),
        torch.ones(1, ways, dtype=dtype, device=device),
    )
    return Q, -one_hot, G, C * one_hot, A.expand(batch, size, n), one_hot.new_zeros(batch, size)


def svm_head(
    support: Tensor,
    support_y: Tensor,
    query: Tensor,
    ways: int,
    C: float = 0.1,
    tol: float = 1e-8,
    max_iter: int = 50,
) -> Tensor:
    """Query scores ``[B, Q, ways]`` of the Crammer-Singer SVM fitted to the support set.

    Shapes as :func:`ridge_regression_head`; ``C`` weighs the slack (MetaOptNet uses 0.1).
    """
    if C <= 0:
        raise ValueError(f"the SVM's C must be positive, got {C}")
    alpha = solve_qp(*svm_dual(support, support_y, ways, C), tol=tol, max_iter=max_iter)
    alpha = alpha.reshape(*support_y.shape, ways)
    return (query @ support.transpose(-1, -2)) @ alpha


class MetaOptNet(MetricLearner):
    """A closed-form linear head (ridge regression or SVM) on any embedding network.

    Args:
        encoder: maps images ``[N, ...]`` to embeddings ``[N, D]``.
        head: ``"r2d2"`` (ridge regression) or ``"svm"`` (Crammer-Singer SVM).
        ridge: the ridge penalty lambda (``"r2d2"``); learned in log space when ``learn_ridge``.
        C: the SVM's slack weight (``"svm"``).
        scale: initial value of the learned factor multiplying the scores.
        tol, max_iter: the SVM's QP solver settings (see :func:`solve_qp`).
        strategy, chunk_size: how tasks of a batch are embedded (see :func:`map_tasks`).
    """

    # the SVM solver stops on a residual over the whole batch: no backward per chunk
    independent_tasks = False

    def __init__(
        self,
        encoder: nn.Module,
        head: Head = "r2d2",
        ridge: float = 50.0,
        learn_ridge: bool = True,
        C: float = 0.1,
        scale: float = 10.0,
        tol: float = 1e-8,
        max_iter: int = 50,
        strategy: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(encoder, strategy, chunk_size)
        if head not in ("r2d2", "svm"):
            raise ValueError(f"head must be 'r2d2' or 'svm', got {head!r}")
        if ridge <= 0 or C <= 0:
            raise ValueError(f"ridge and C must be positive, got ridge={ridge}, C={C}")
        self.head = head
        if head == "r2d2":  # the SVM has no ridge: no unused parameter
            log_ridge = torch.tensor(math.log(ridge))
            if learn_ridge:
                self.log_ridge = nn.Parameter(log_ridge)
            else:
                self.register_buffer("log_ridge", log_ridge)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.C, self.tol, self.max_iter = C, tol, max_iter

    def scores(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        """Scaled query scores ``[B, Q, ways]`` of the head fitted to embedded support sets."""
        if self.head == "r2d2":
            raw = ridge_regression_head(support, support_y, query, ways, self.log_ridge.exp())
        else:
            raw = svm_head(support, support_y, query, ways, self.C, self.tol, self.max_iter)
        return self.scale * raw

    def forward(self, batch: TaskBatch) -> MetaOutput:
        support, query = self.embed(batch)
        logits = self.scores(support, batch.support_y, query, task_ways(batch))
        losses = F.cross_entropy(logits.transpose(1, 2), batch.query_y, reduction="none").mean(1)
        return MetaOutput.from_tasks(losses, logits, batch.query_y)


def build_r2d2(
    settings: AlgorithmConfig, options: R2D2Options, model: nn.Module, input_shape: tuple[int, ...]
) -> MetaOptNet:
    """Ridge-regression head on ``model`` (an embedding network) from a run's ``algorithm``."""
    return MetaOptNet(
        model, "r2d2", ridge=options.ridge, learn_ridge=options.learn_ridge, scale=options.scale,
        strategy=settings.strategy, chunk_size=settings.chunk_size,
    )  # fmt: skip


def build_svm(
    settings: AlgorithmConfig, options: SVMOptions, model: nn.Module, input_shape: tuple[int, ...]
) -> MetaOptNet:
    """Crammer-Singer SVM head on ``model`` (an embedding network) from a run's ``algorithm``."""
    return MetaOptNet(
        model, "svm", C=options.C, scale=options.scale, tol=options.tol,
        max_iter=options.max_iter, strategy=settings.strategy, chunk_size=settings.chunk_size,
    )  # fmt: skip
