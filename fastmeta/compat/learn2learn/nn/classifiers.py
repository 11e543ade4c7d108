"""learn2learn's few-shot heads: the prototype classifier and MetaOptNet's SVM, on fastmeta.

``SVClassifier`` solves the Crammer-Singer SVM dual with fastmeta's differentiable QP solver
(:mod:`fastmeta.functional.qp`, via :func:`fastmeta.algorithms.metaoptnet.svm_dual`), so it
needs no ``qpth``. Unlike learn2learn it solves the exact dual: learn2learn adds the identity
to the kernel (a ridge term), which moves its scores slightly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.metaoptnet import svm_dual
from fastmeta.functional.qp import solve_qp

EPS = 1e-8
TOLERANCE = 1e-8  # the QP tolerance of fastmeta's MetaOptNet head
Distance = Callable[[Tensor, Tensor], Tensor]


def _normalize(x: Tensor, epsilon: float = EPS) -> Tensor:
    norm: Tensor = x.norm(p=2, dim=1, keepdim=True)
    return x / (norm + epsilon)


def _class_indices(labels: Tensor) -> tuple[Tensor, int]:
    """Each label's position among the sorted distinct labels, and their number."""
    classes, codes = torch.unique(labels, return_inverse=True)
    return codes, classes.numel()


class PrototypicalClassifier(nn.Module):
    """Nearest class mean (Snell et al. 2017): ``fit_(support, labels)``, then scores.

    Args:
        support, labels: fitted at once when both are given.
        distance: ``"euclidean"`` (squared), ``"cosine"`` (implies ``normalize``) or a callable
            ``distance(prototypes, queries) -> [queries, classes]``.
        normalize: scale prototypes and queries to unit length.

    Column ``j`` of the scores is the ``j``-th smallest label of the support set.
    """

    def __init__(
        self,
        support: Tensor | None = None,
        labels: Tensor | None = None,
        distance: str | Distance = "euclidean",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if distance == "euclidean":
            self.distance: Distance = self.euclidean_distance
        elif distance == "cosine":
            self.distance = self.cosine_distance
            normalize = True
        elif callable(distance):
            self.distance = distance
        else:
            raise ValueError(
                f"distance must be 'euclidean', 'cosine' or a callable, got {distance!r}"
            )
        self.normalize = normalize
        self.prototypes: Tensor | None = None
        if support is not None and labels is not None:
            self.fit_(support, labels)

    def fit_(self, support: Tensor, labels: Tensor) -> Tensor:
        """Compute, keep and return the class means of ``support`` (differentiably)."""
        codes, ways = _class_indices(labels)
        one_hot = F.one_hot(codes, ways).to(support.dtype)
        prototypes = (one_hot.t() @ support) / one_hot.sum(0).unsqueeze(1)
        self.prototypes = _normalize(prototypes) if self.normalize else prototypes
        return self.prototypes

    @staticmethod
    def euclidean_distance(prototypes: Tensor, queries: Tensor) -> Tensor:
        return (queries.unsqueeze(1) - prototypes.unsqueeze(0)).pow(2).sum(2)

    @staticmethod
    def cosine_distance(prototypes: Tensor, queries: Tensor) -> Tensor:
        return -(queries @ prototypes.t())  # both already normalised

    def forward(self, x: Tensor) -> Tensor:
        if self.prototypes is None:
            raise RuntimeError("fit the classifier first: classifier.fit_(support, labels)")
        return -self.distance(self.prototypes, _normalize(x) if self.normalize else x)


class SVClassifier(nn.Module):
    """MetaOptNet's multi-class SVM head (Lee et al. 2019): ``fit_(support, labels)``, then
    scores ``[queries, ways]``. Labels are ``0 .. ways-1``; ``C_reg`` weighs the slack and
    ``max_iters`` bounds the solver's iterations (it raises when they do not suffice)."""

    def __init__(
        self,
        support: Tensor | None = None,
        labels: Tensor | None = None,
        ways: int | None = None,
        normalize: bool = False,
        C_reg: float = 0.1,
        max_iters: int = 15,
    ) -> None:
        super().__init__()
        self.C_reg = C_reg
        self.max_iters = max_iters
        self._normalize = normalize
        self.support: Tensor | None = None
        self.qp_solution: Tensor | None = None
        if support is not None and labels is not None:
            self.fit_(support, labels, ways)

    def fit_(
        self,
        support: Tensor,
        labels: Tensor,
        ways: int | None = None,
        C_reg: float | None = None,
        max_iters: int | None = None,
    ) -> None:
        """Solve the SVM on ``support`` embeddings ``[S, D]`` with ``labels [S]``."""
        support = _normalize(support) if self._normalize else support
        ways = int(torch.unique(labels).numel()) if ways is None else ways
        data = svm_dual(support.unsqueeze(0), labels.long().unsqueeze(0), ways,
                        self.C_reg if C_reg is None else C_reg)  # fmt: skip
        iterations = self.max_iters if max_iters is None else max_iters
        solution = solve_qp(*data, tol=TOLERANCE, max_iter=iterations)
        self.qp_solution = solution.reshape(support.shape[0], ways)
        self.support = support
        self.ways = ways

    def forward(self, x: Tensor) -> Tensor:
        if self.support is None or self.qp_solution is None:
            raise RuntimeError("fit the classifier first: classifier.fit_(support, labels)")
        x = _normalize(x) if self._normalize else x
        return (x @ self.support.t()) @ self.qp_solution
