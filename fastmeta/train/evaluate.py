"""The evaluation protocol: fixed episodes, per-episode scores, mean and 95% confidence interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.algorithms.base import MetaOutput
from fastmeta.tasks import TaskBatch


@dataclass(frozen=True)
class Summary:
    """Mean of per-episode values with its 95% confidence interval ``1.96 * std / sqrt(n)``.

    ``std`` is the sample standard deviation (ddof=1) over the finite values; ``non_finite``
    counts episodes whose value is NaN or infinite (they are excluded from mean and median).
    """

    mean: float
    ci95: float
    median: float
    count: int
    non_finite: int

    def format(self, scale: float = 1.0, digits: int = 3) -> str:
        text = f"{self.mean * scale:.{digits}f} +- {self.ci95 * scale:.{digits}f}"
        if self.non_finite:
            text += f" ({self.non_finite} non-finite of {self.count + self.non_finite})"
        return text


def summarize(values: Tensor) -> Summary:
    """Mean, 95% CI and median of a 1-D tensor of per-episode values."""
    values = values.detach().double().flatten().cpu()
    finite = values[torch.isfinite(values)]
    n = finite.numel()
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0, values.numel())
    std = float(finite.std()) if n > 1 else 0.0
    return Summary(
        mean=float(finite.mean()),
        ci95=1.96 * std / math.sqrt(n),
        median=float(torch.quantile(finite, 0.5)),
        count=n,
        non_finite=values.numel() - n,
    )


def evaluate_episodes(
    evaluate: Callable[[TaskBatch], MetaOutput], batches: Iterable[TaskBatch]
) -> dict[str, Tensor]:
    """Per-episode query loss (and accuracy for classification) over ``batches``, concatenated."""
    losses, accuracies = [], []
    for batch in batches:
        out = evaluate(batch)
        losses.append(out.task_losses.cpu())
        if out.accuracy is not None:
            accuracies.append(out.accuracy.cpu())
    result = {"loss": torch.cat(losses)}
    if accuracies:
        result["accuracy"] = torch.cat(accuracies)
    return result
