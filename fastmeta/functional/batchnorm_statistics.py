"""Record BatchNorm batch statistics, or normalise with given ones, inside a functional forward.

MAML++ keeps BatchNorm running statistics per inner step. The engine's forward is pure (no
buffer is ever updated, see :mod:`fastmeta.functional.params`), so instead of mutating buffers
this mode *records* the mean and variance every ``F.batch_norm`` call normalises with, to be
returned from the (vmapped) task function and averaged by the caller; or *replaces* them by
given statistics, for evaluation with running statistics. Enter it outside
:func:`~fastmeta.functional.params.functional_forward`, whose own mode then hands it the
affine-free normalisation call, so the affine-by-hand property is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from fastmeta.functional.params import BatchNormCall, BatchNormMode

Statistics = tuple[Tensor, Tensor]


class BatchNormStatistics(BatchNormMode):
    """Within the ``with`` block, each ``F.batch_norm`` call (in order) either appends its
    batch ``(mean, unbiased variance)`` to :attr:`recorded` (``statistics=None``) or normalises
    with ``statistics[i]`` instead of its batch statistics."""

    def __init__(self, statistics: Sequence[Statistics] | None = None) -> None:
        super().__init__()
        self.statistics = statistics
        self.recorded: list[Statistics] = []
        self.calls = 0

    def batch_norm(self, call: BatchNormCall) -> Tensor:
        c = call
        index = self.calls
        self.calls += 1
        if self.statistics is None:
            dims = [0, *range(2, c.input.dim())]
            self.recorded.append((c.input.mean(dims).detach(), c.input.var(dims).detach()))
            return F.batch_norm(
                c.input, c.running_mean, c.running_var, c.weight, c.bias, c.training, c.momentum,
                c.eps,
            )  # fmt: skip
        if index >= len(self.statistics):
            raise RuntimeError(
                f"BatchNorm call {index + 1} in one forward, but statistics were given for "
                f"{len(self.statistics)} layers: each BatchNorm layer must run once per forward"
            )
        mean, var = self.statistics[index]
        return F.batch_norm(c.input, mean, var, c.weight, c.bias, False, 0.0, c.eps)
