"""Multinomial logistic regression on the support features, solved to optimality.

Per task it minimises ``1/2 |W|^2 + C * sum_i CE(W x_i + b, y_i)`` (scikit-learn's
convention: ``C`` is the inverse of the penalty; the bias is not penalised) by L-BFGS with a
strong-Wolfe line search in float64. The tasks' problems are independent, so their sum is
minimised at once. ``normalize`` scales every feature vector to unit length first (usual for
frozen features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LogisticRegression:
    """Logistic regression head (see the module doc)."""

    C: float = 10.0
    normalize: bool = True
    max_iter: int = 100
    tolerance: float = 1e-9

    def __post_init__(self) -> None:
        if self.C <= 0 or self.max_iter < 1:
            raise ValueError(
                f"need C > 0 and max_iter >= 1; got C={self.C}, max_iter={self.max_iter}"
            )

    def fit(self, support: Tensor, support_y: Tensor, ways: int) -> tuple[Tensor, Tensor]:
        """Weights ``[B, ways, D]`` and biases ``[B, ways]`` (float64) of each task's optimum."""
        x = self._prepare(support)
        tasks, shots, dim = x.shape
        weight = torch.zeros(tasks, ways, dim, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(tasks, ways, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=self.max_iter, tolerance_grad=self.tolerance,
            tolerance_change=1e-15, history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip
        labels = support_y.flatten()

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = objective(x, labels, weight, bias, self.C) / (self.C * shots)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
            return loss

        with torch.enable_grad():
            optimizer.step(closure)  # type: ignore[no-untyped-call]
        return weight.detach(), bias.detach()

    def _prepare(self, features: Tensor) -> Tensor:
        x = features.detach().double()
        return F.normalize(x, dim=-1) if self.normalize else x

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor:
        weight, bias = self.fit(support, support_y, ways)
        logits = self._prepare(query) @ weight.mT + bias.unsqueeze(1)
        return logits.to(query.dtype)


def objective(x: Tensor, labels: Tensor, weight: Tensor, bias: Tensor, C: float) -> Tensor:
    """``sum over tasks of 1/2 |W|^2 + C * sum_i CE``, for ``x [B, S, D]``, ``labels [B*S]``."""
    logits = x @ weight.mT + bias.unsqueeze(1)
    cross_entropy = F.cross_entropy(logits.flatten(0, 1), labels, reduction="sum")
    return 0.5 * weight.pow(2).sum() + C * cross_entropy
