"""CAVIA: fast context adaptation (Zintgraf et al. 2019), batched over tasks.

The network is shared by all tasks and only meta-trained; each task adapts a small context
vector, zero at the start of every task, by gradient steps on its support loss, and the
network reads the context as an extra input (FiLM for convolutional networks, concatenation
for fully connected ones: :class:`~fastmeta.models.film.ContextModel`). The meta-gradient
flows into the network through the context updates (second order by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.algorithms.options import CAVIAOptions
from fastmeta.functional.inner import descend
from fastmeta.functional.params import Params, functional_forward, module_state
from fastmeta.models.film import context_model
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fastmeta.run_config import AlgorithmConfig


class CAVIA(InnerLoopLearner):
    """Context adaptation over a network called as ``model(x, context)``.

    Args:
        model: takes inputs ``[N, ...]`` and a context ``[context_dim]`` (e.g. a
            :class:`~fastmeta.models.film.ContextModel`); all its parameters are meta-learned.
        context_dim: length of the context vector.
        lr: inner learning rate of the context.
        steps: inner steps in training; ``test_steps`` in :meth:`evaluate` (default ``steps``).
        first_order: treat the inner gradients as constants.
        loss_fn, inner_loss_scale, strategy, chunk_size: as in :class:`~fastmeta.algorithms.MAML`.
    """

    def __init__(
        self,
        model: nn.Module,
        context_dim: int,
        lr: float = 1.0,
        steps: int = 1,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        if context_dim < 1:
            raise ValueError(f"context_dim must be >= 1, got {context_dim}")
        self.context_dim = context_dim
        self.lr = lr

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Adapt every task's context for ``steps`` steps and score its query set."""
        params, buffers = module_state(self.model)

        def forward(x: Tensor, context: Tensor) -> Tensor:
            out: Tensor = functional_forward(self.model, params, buffers, x, context)
            return out

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            def support_loss(fast: Params, step: int) -> Tensor:
                return self.support_loss(forward(sx, fast["context"]), sy)

            start = {"context": sx.new_zeros(self.context_dim)}
            fast = descend(support_loss, start, steps=steps, lr=self.lr, first_order=first_order)
            predictions = forward(qx, fast["context"])
            return self.loss_fn(predictions, qy), predictions

        losses, predictions = self.per_task(task_fn, batch)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)


def build_cavia(
    settings: AlgorithmConfig, options: CAVIAOptions, model: nn.Module, input_shape: tuple[int, ...]
) -> CAVIA:
    """CAVIA from a run's ``algorithm`` section; ``inner_lr`` is the context's learning rate."""
    a = settings
    return CAVIA(
        context_model(model, options.context_dim, options.film_layer), options.context_dim,
        lr=a.inner_lr, steps=a.inner_steps, test_steps=a.test_inner_steps,
        first_order=a.first_order, inner_loss_scale=a.inner_loss_scale, strategy=a.strategy,
        chunk_size=a.chunk_size,
    )  # fmt: skip
