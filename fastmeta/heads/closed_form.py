"""MetaOptNet's closed-form heads at test time: ridge regression and the multi-class SVM
(:mod:`fastmeta.algorithms.metaoptnet`'s solvers, on fixed features)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.algorithms.metaoptnet import ridge_regression_head, svm_head


@dataclass(frozen=True)
class Ridge:
    """Ridge regression to one-hot targets with penalty ``ridge`` (R2D2's head)."""

    ridge: float = 50.0

    def __post_init__(self) -> None:
        if self.ridge <= 0:
            raise ValueError(f"the ridge penalty must be positive, got {self.ridge}")

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        with torch.no_grad():
            return ridge_regression_head(support, support_y, query, ways, self.ridge)


@dataclass(frozen=True)
class SVM:
    """The Crammer-Singer multi-class SVM with slack weight ``C`` (MetaOptNet's head)."""

    C: float = 0.1
    max_iter: int = 50

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        with torch.no_grad():
            return svm_head(support, support_y, query, ways, self.C, max_iter=self.max_iter)
