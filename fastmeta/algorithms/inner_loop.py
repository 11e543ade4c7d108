"""The base of every learner with a gradient inner loop (MAML and its variants, MAML++, iMAML,
CAVIA, Reptile): the checked settings they share, the default loss, and ``forward`` /
``evaluate`` over one hook, :meth:`InnerLoopLearner.run`."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.functional.batched import check_strategy
from fastmeta.functional.inner import LossFn
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack


def default_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer class targets, mean squared error for real targets."""
    if targets.dtype.is_floating_point:
        return F.mse_loss(predictions, targets)
    return F.cross_entropy(predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1))


class InnerLoopSettings(TypedDict, total=False):
    """The keyword settings every inner-loop learner takes (see :class:`InnerLoopLearner`)."""

    test_steps: int | None
    first_order: bool
    loss_fn: LossFn | None
    inner_loss_scale: float
    strategy: str
    chunk_size: int | None


class InnerLoopLearner(MetaLearner):
    """A :class:`MetaLearner` that adapts on each task's support set by inner gradient steps.

    Subclasses implement :meth:`run`; ``forward`` runs it with the training ``steps`` (second
    order unless ``first_order``) and ``evaluate`` with ``test_steps`` and no graph.

    Settings (:class:`InnerLoopSettings`, by keyword): ``test_steps`` inner steps in
    :meth:`evaluate` (default ``steps``); ``first_order`` drops second derivatives;
    ``loss_fn(predictions, targets)`` (default :func:`default_loss`); ``inner_loss_scale``
    multiplies the support loss the inner loop descends; ``strategy`` (``"auto"``, ``"vmap"`` or
    ``"loop"``) and ``chunk_size`` say how the tasks of a batch run (same numbers, see
    :func:`~fastmeta.functional.batched.map_tasks`).

    ``min_steps`` and ``min_test_steps`` are the fewest inner steps the method accepts in
    training and at test time; ``unused_settings`` those settings it has no use for.
    """

    independent_tasks = True
    min_steps = 0
    min_test_steps: int | None = None  # None: as min_steps
    unused_settings: tuple[str, ...] = ()

    def __init__(
        self, model: nn.Module, *, steps: int, **settings: Unpack[InnerLoopSettings]
    ) -> None:
        """Check and store the settings."""
        super().__init__()
        unused = [key for key in settings if key in self.unused_settings]
        if unused:
            raise TypeError(f"{type(self).__name__} takes no {unused[0]} setting")
        test_steps = settings.get("test_steps")
        strategy = settings.get("strategy", "auto")
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
        self.loss_fn = settings.get("loss_fn") or default_loss
        self.inner_loss_scale = settings.get("inner_loss_scale", 1.0)
        self.strategy = strategy
        self.chunk_size = settings.get("chunk_size")
        self._first_order = settings.get("first_order", False)

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
        """Adapt every task of ``batch`` for ``steps`` steps and score its query set (the hook
        of ``forward`` and ``evaluate``; MAML++, whose loss weighs every step, overrides those
        two instead)."""
        raise NotImplementedError
