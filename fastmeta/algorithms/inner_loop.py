"""The base of every learner with a gradient inner loop (MAML and its variants, MAML++, iMAML,
CAVIA, Reptile): the checked settings they share, the default loss, and ``forward`` /
``evaluate`` over one hook, :meth:`InnerLoopLearner.run`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.functional.batched import check_strategy
from fastmeta.functional.inner import LossFn
from fastmeta.tasks import TaskBatch


def default_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer class targets, mean squared error for real targets."""
    if targets.dtype.is_floating_point:
        return F.mse_loss(predictions, targets)
    return F.cross_entropy(predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1))


class InnerLoopLearner(MetaLearner):
    """A :class:`MetaLearner` that adapts on each task's support set by inner gradient steps.

    Subclasses implement :meth:`run`; ``forward`` runs it with the training ``steps`` (second
    order unless ``first_order``) and ``evaluate`` with ``test_steps`` and no graph.
    ``min_steps`` and ``min_test_steps`` are the fewest inner steps the method accepts in
    training and at test time.
    """

    independent_tasks = True
    min_steps = 0
    min_test_steps: int | None = None  # None: as min_steps

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int,
        test_steps: int | None,
        loss_fn: LossFn | None,
        inner_loss_scale: float,
        strategy: str,
        chunk_size: int | None,
        first_order: bool = False,
    ) -> None:
        """Check and store the settings: ``test_steps`` defaults to ``steps``, ``loss_fn`` to
        :func:`default_loss`."""
        super().__init__()
        minimum = self.min_steps
        test_minimum = minimum if self.min_test_steps is None else self.min_test_steps
        if steps < minimum or (test_steps is not None and test_steps < test_minimum):
            raise ValueError(
                f"{type(self).__name__} needs inner steps >= {minimum} (>= {test_minimum} at "
                f"test time); got steps={steps}, test_steps={test_steps}"
            )
        check_strategy(strategy)
        self.model = model
        self.steps = steps
        self.test_steps = steps if test_steps is None else test_steps
        self.loss_fn = loss_fn or default_loss
        self.inner_loss_scale = inner_loss_scale
        self.strategy = strategy
        self.chunk_size = chunk_size
        self._first_order = first_order

    @property
    def meta_first_order(self) -> bool:
        """Whether the current meta-step drops second derivatives."""
        return self._first_order

    def support_loss(self, predictions: Tensor, targets: Tensor) -> Tensor:
        """The loss the inner loop descends: ``inner_loss_scale`` times ``loss_fn``."""
        return self.inner_loss_scale * self.loss_fn(predictions, targets)

    def forward(self, batch: TaskBatch) -> MetaOutput:
        """Query losses after adapting every task with the training settings."""
        return self.run(batch, steps=self.steps, first_order=self.meta_first_order)

    def evaluate(self, batch: TaskBatch, steps: int | None = None) -> MetaOutput:
        """Adapt with ``test_steps`` (or ``steps``) and score the queries; builds no graph."""
        with torch.no_grad():
            return self.run(
                batch, steps=self.test_steps if steps is None else steps, first_order=True
            )

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Adapt every task of ``batch`` for ``steps`` steps and score its query set."""
        raise NotImplementedError
