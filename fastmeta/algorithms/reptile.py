"""Reptile (Nichol et al. 2018), expressed so the ordinary optimizer applies its update.

For each task, Reptile runs ``steps`` steps of an ordinary optimizer (SGD, or Adam with
``beta1 = 0``) on mini-batches of the task's support set, from the current parameters
``theta``, to ``theta'``; then it moves ``theta <- theta + eps_t * mean_tasks(theta' - theta)``
with ``eps_t`` annealed linearly from ``outer_lr`` to ``final_outer_lr`` over training.

How this fits ``forward(TaskBatch) -> MetaOutput``: the meta-loss is the surrogate
``eps_t / 2 * mean_tasks ||theta - stop_grad(theta'_task)||^2``, whose gradient with respect
to ``theta`` is ``eps_t * (theta - mean_tasks(theta'))``. The annealed step size lives in the
gradient (set by :meth:`Reptile.start_step`), so the outer optimizer ``SGD(lr=1)`` (no momentum,
no weight decay) applies exactly the Reptile update; any other optimizer treats it as a gradient
(Nichol et al. note Adam can be used this way). The inner loop builds no graph.

Differences from the reference code, by design: each task starts the inner optimizer from a
fresh state (the reference carries Adam's moments across tasks and iterations), and evaluation
adapts on the whole support set at every step (deterministic, so test episodes stay fixed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.algorithms.options import ReptileOptions
from fastmeta.functional.batched import map_tasks
from fastmeta.functional.inner import descend
from fastmeta.functional.optimizers import Adam, InnerOptimizer, inner_optimizer
from fastmeta.functional.params import Params, functional_forward, module_state, select_adaptable
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fastmeta.run_config import AlgorithmConfig


def minibatch_indices(num_tasks: int, support_size: int, batch_size: int, steps: int) -> Tensor:
    """Indices ``[num_tasks, steps, batch_size]`` of each inner step's support mini-batch.

    Each task walks through random permutations of its support set, one after another
    (sampling without replacement, reshuffled every epoch), drawn from torch's global generator.
    """
    if not 1 <= batch_size <= support_size:
        raise ValueError(
            f"Reptile's inner_batch must be between 1 and the {support_size} support examples "
            f"of a task, got {batch_size}"
        )
    epochs = math.ceil(steps * batch_size / support_size)
    orders = torch.rand(num_tasks, epochs, support_size).argsort(-1).reshape(num_tasks, -1)
    return orders[:, : steps * batch_size].reshape(num_tasks, steps, batch_size)


def annealed(step: int, total: int, start: float, end: float) -> float:
    """The value at ``step`` of ``total`` on the line from ``start`` (step 0) towards ``end``."""
    done = step / max(total, 1)
    return (1 - done) * start + done * end


class Reptile(InnerLoopLearner):
    """Reptile over any ``nn.Module``.

    Args:
        model: the network whose initial parameters are meta-learned.
        lr: inner learning rate.
        steps: inner steps per task in training.
        test_steps: inner steps in :meth:`evaluate` (default: ``steps``).
        inner_batch: support examples per inner step in training (``None``: the whole set).
        outer_lr: the Reptile step ``eps`` at the start of training.
        final_outer_lr: ``eps`` reached, linearly, at the end of training.
        optimizer: the inner optimizer (default Adam with ``betas=(0, 0.999)``, as the paper).
        loss_fn: ``loss_fn(predictions, targets)`` (default: cross-entropy or MSE).
        strategy, chunk_size: how the tasks of a batch run (see :func:`map_tasks`).
    """

    # the inner mini-batch order of a whole batch is drawn at once: no backward per chunk
    independent_tasks = False
    min_steps = 1
    min_test_steps = 0
    unused_settings = ("first_order", "inner_loss_scale")  # the mean support loss, no graph

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.001,
        steps: int = 5,
        *,
        inner_batch: int | None = None,
        outer_lr: float = 1.0,
        final_outer_lr: float = 0.0,
        optimizer: InnerOptimizer | None = None,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        self.lr = lr
        self.inner_batch = inner_batch
        self.outer_lr = outer_lr
        self.final_outer_lr = final_outer_lr
        self.epsilon = outer_lr
        self.optimizer = optimizer or Adam(betas=(0.0, 0.999))

    def start_step(self, step: int, total: int) -> None:
        """Anneal the Reptile step linearly: ``eps`` at meta-step ``step`` of ``total``."""
        self.epsilon = annealed(step, total, self.outer_lr, self.final_outer_lr)

    def forward(self, batch: TaskBatch) -> MetaOutput:
        """The surrogate meta-loss (gradient ``eps * (theta - mean theta')``) and query scores."""
        params, buffers = module_state(self.model)
        names = select_adaptable(params, None)
        support = batch.support_x.shape[1]
        size = self.inner_batch or support
        order = minibatch_indices(batch.num_tasks, support, size, self.steps)
        order = order.reshape(batch.num_tasks, -1).to(batch.device)
        rows = torch.arange(batch.num_tasks, device=batch.device).unsqueeze(1)
        walk = TaskBatch(
            batch.support_x[rows, order], batch.support_y[rows, order], batch.query_x, batch.query_y
        )

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, ...]:
            # torch leaves Tensor.unflatten untyped
            xs = sx.unflatten(0, (self.steps, size))  # type: ignore[no-untyped-call]  # torch
            ys = sy.unflatten(0, (self.steps, size))  # type: ignore[no-untyped-call]  # torch
            fast = self.inner_loop(params, buffers, names, xs, ys)
            # a tensor: some parameter is adapted (sum's start, 0, is never returned)
            distance = cast(Tensor, sum(((params[n] - fast[n]) ** 2).sum() for n in names))
            with torch.no_grad():
                predictions = functional_forward(self.model, fast, buffers, qx)
                loss = self.loss_fn(predictions, qy)
            return 0.5 * self.epsilon * distance, loss, predictions

        how = self.task_plan(batch)
        surrogate, losses, predictions = map_tasks(task_fn, walk, how.strategy, how.chunk_size)
        scores = MetaOutput.from_tasks(losses, predictions, batch.query_y)
        scores.loss = surrogate.mean()
        return scores

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Adapt on the whole support set at every one of ``steps`` steps; score the queries
        (evaluation: deterministic, so test episodes stay fixed)."""
        params, buffers = module_state(self.model)
        names = select_adaptable(params, None)

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            xs, ys = sx.expand(steps, *sx.shape), sy.expand(steps, *sy.shape)
            fast = self.inner_loop(params, buffers, names, xs, ys)
            predictions = functional_forward(self.model, fast, buffers, qx)
            return self.loss_fn(predictions, qy), predictions

        losses, predictions = self.per_task(task_fn, batch)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)

    def inner_loop(
        self, params: Params, buffers: Params, names: list[str], xs: Tensor, ys: Tensor
    ) -> Params:
        """One optimizer step per mini-batch ``xs[i], ys[i]`` from ``params``, no graph kept."""
        fixed = {n: p for n, p in params.items() if n not in names}

        def batch_loss(adapted: Params, step: int) -> Tensor:
            predictions = functional_forward(self.model, {**fixed, **adapted}, buffers, xs[step])
            return self.loss_fn(predictions, ys[step])

        with torch.no_grad():
            fast = descend(
                batch_loss, {n: params[n].detach() for n in names}, steps=xs.shape[0],
                lr=self.lr, optimizer=self.optimizer,
            )  # fmt: skip
        return {**fixed, **fast}


def build_reptile(
    settings: AlgorithmConfig,
    options: ReptileOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> Reptile:
    """Reptile from a run's ``algorithm`` section: inner lr and steps from it, the rest from
    its options."""
    return Reptile(
        model, lr=settings.inner_lr, steps=settings.inner_steps,
        test_steps=settings.test_inner_steps, inner_batch=options.inner_batch,
        outer_lr=options.outer_lr, final_outer_lr=options.final_outer_lr,
        optimizer=inner_optimizer(options.inner_optimizer, betas=options.adam_betas),
        strategy=settings.strategy, chunk_size=settings.chunk_size,
    )  # fmt: skip
