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
from torch.overrides import TorchFunctionMode

Statistics = tuple[Tensor, Tensor]


class BatchNormStatistics(TorchFunctionMode):
    """Within the ``with`` block, each ``F.batch_norm`` call (in order) either appends its
    batch ``(mean, unbiased variance)`` to :attr:`recorded` (``statistics=None``) or normalises
    with ``statistics[i]`` instead of its batch statistics."""

    def __init__(self, statistics: Sequence[Statistics] | None = None) -> None:
        super().__init__()
        self.statistics = statistics
        self.recorded: list[Statistics] = []
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func is not F.batch_norm:
            return func(*args, **kwargs)
        return self._batch_norm(*args, **kwargs)

    def _batch_norm(
        self,
        input: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        weight: Tensor | None = None,
        bias: Tensor | None = None,
        training: bool = False,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> Tensor:
        index = self.calls
        self.calls += 1
        if self.statistics is None:
            dims = [0, *range(2, input.dim())]
            self.recorded.append((input.mean(dims).detach(), input.var(dims).detach()))
            return F.batch_norm(
                input, running_mean, running_var, weight, bias, training, momentum, eps
            )
        if index >= len(self.statistics):
            raise RuntimeError(
                f"BatchNorm call {index + 1} in one forward, but statistics were given for "
                f"{len(self.statistics)} layers: each BatchNorm layer must run once per forward"
            )
        mean, var = self.statistics[index]
        return F.batch_norm(input, mean, var, weight, bias, False, 0.0, eps)
