"""What the learners with a gradient inner loop (MAML, MAML++, iMAML, CAVIA) share: the default
loss, and the checked settings of the inner loop and of how the tasks of a batch run."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from fastmeta.algorithms.base import MetaLearner
from fastmeta.functional.batched import check_strategy
from fastmeta.functional.inner import LossFn


def default_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer class targets, mean squared error for real targets."""
    if targets.dtype.is_floating_point:
        return F.mse_loss(predictions, targets)
    return F.cross_entropy(predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1))


class InnerLoopLearner(MetaLearner):
    """A :class:`MetaLearner` that adapts on the support set by inner gradient steps."""

    def init_inner_loop(
        self,
        *,
        steps: int,
        test_steps: int | None,
        loss_fn: LossFn | None,
        inner_loss_scale: float,
        strategy: str,
        chunk_size: int | None,
        min_steps: int = 0,
    ) -> None:
        """Check and store ``steps``, ``test_steps`` (default ``steps``), ``loss_fn`` (default
        :func:`default_loss`), ``inner_loss_scale``, ``strategy`` and ``chunk_size``."""
        if steps < min_steps or (test_steps is not None and test_steps < min_steps):
            raise ValueError(
                f"{type(self).__name__} needs inner steps >= {min_steps}; got steps={steps}, "
                f"test_steps={test_steps}"
            )
        check_strategy(strategy)
        self.steps = steps
        self.test_steps = steps if test_steps is None else test_steps
        self.loss_fn = loss_fn or default_loss
        self.inner_loss_scale = inner_loss_scale
        self.strategy = strategy
        self.chunk_size = chunk_size
