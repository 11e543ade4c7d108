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

The inner optimizer's state: by default each task starts it afresh, so inner Adam's first
steps are sign-like (``lr * g / |g|``). ``carry_state`` does what the authors' code does
(``openai/supervised-reptile``: TensorFlow's Adam slots are not among the variables it resets):
the moments and the step count of the bias correction carry from task to task and from meta-step
to meta-step, the tasks of a batch then run one after another; evaluation starts every test task
from the carried state and keeps nothing. The carried state is a buffer of this module, so
checkpoints hold it and runs resume exactly. Evaluation adapts on the whole support set at every
step (deterministic, so test episodes stay fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.algorithms.options import ReptileOptions
from fastmeta.functional.batched import map_tasks
from fastmeta.functional.inner import descend
from fastmeta.functional.optimizers import Adam, InnerOptimizer, Rates, State, inner_optimizer
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


class Continued(InnerOptimizer):
    """``optimizer`` resumed from ``state`` after ``done`` steps; the last state it returned is
    kept in :attr:`final` (read when tasks run one after another)."""

    def __init__(self, optimizer: InnerOptimizer, state: State, done: int) -> None:
        self.optimizer, self.state, self.done = optimizer, state, done
        self.final = state

    def init(self, params: Params) -> State:
        return self.state

    def step(
        self, params: Params, grads: Params, state: State, rates: Rates, step: int
    ) -> tuple[Params, State]:
        new, self.final = self.optimizer.step(params, grads, state, rates, self.done + step)
        return new, self.final


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
        carry_state: the inner optimizer's state carries across tasks and meta-steps (the
            authors' code) instead of starting afresh for every task.
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
        carry_state: bool = False,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        self.lr = lr
        self.inner_batch = inner_batch
        self.outer_lr = outer_lr
        self.final_outer_lr = final_outer_lr
        self.epsilon = outer_lr
        self.optimizer = optimizer or Adam(betas=(0.0, 0.999))
        self.carry_state = carry_state
        if carry_state:
            adaptable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
            self.carried = nn.Module()
            for slot, tensors in self.optimizer.init(adaptable).items():
                for name, tensor in tensors.items():
                    self.carried.register_buffer(_buffer_name(slot, name), tensor.clone())
            self.carried.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def carried_optimizer(self) -> Continued:
        """The inner optimizer resumed from the carried state (``carry_state``)."""
        state: State = {}
        for key, tensor in self.carried.named_buffers():
            if key != "steps_done":
                slot, name = key.split("/", 1)
                state.setdefault(slot, {})[name.replace("/", ".")] = tensor
        return Continued(self.optimizer, state, int(self.carried.get_buffer("steps_done")))

    def keep_state(self, optimizer: Continued, steps: int) -> None:
        """Store ``optimizer``'s last state as the carried one, ``steps`` steps later."""
        with torch.no_grad():
            for slot, tensors in optimizer.final.items():
                for name, tensor in tensors.items():
                    self.carried.get_buffer(_buffer_name(slot, name)).copy_(tensor)
            self.carried.get_buffer("steps_done").add_(steps)

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

        def task_fn(
            sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor, optimizer: InnerOptimizer | None = None
        ) -> tuple[Tensor, ...]:
            # torch leaves Tensor.unflatten untyped
            xs = sx.unflatten(0, (self.steps, size))  # type: ignore[no-untyped-call]  # torch
            ys = sy.unflatten(0, (self.steps, size))  # type: ignore[no-untyped-call]  # torch
            fast = self.inner_loop(params, buffers, names, xs, ys, optimizer)
            # a tensor: some parameter is adapted (sum's start, 0, is never returned)
            distance = cast(Tensor, sum(((params[n] - fast[n]) ** 2).sum() for n in names))
            with torch.no_grad():
                predictions = functional_forward(self.model, fast, buffers, qx)
                loss = self.loss_fn(predictions, qy)
            return 0.5 * self.epsilon * distance, loss, predictions

        if self.carry_state:
            surrogate, losses, predictions = self.one_after_another(task_fn, walk)
        else:
            how = self.task_plan(batch)
            surrogate, losses, predictions = map_tasks(task_fn, walk, how.strategy, how.chunk_size)
        scores = MetaOutput.from_tasks(losses, predictions, batch.query_y)
        scores.loss = surrogate.mean()
        return scores

    def counted_work(self, task: TaskBatch) -> None:
        """What ``"auto"`` weighs for a one-task batch: the training forward, or on a support
        set smaller than ``inner_batch`` (a test episode, which the training forward cannot
        walk in mini-batches) the test-time adaptation."""
        if self.inner_batch is not None and task.support_x.shape[1] < self.inner_batch:
            self.run(task, steps=self.test_steps, first_order=True)
        else:
            self.forward(task)

    def one_after_another(
        self, task_fn: Callable[..., tuple[Tensor, ...]], walk: TaskBatch
    ) -> tuple[Tensor, ...]:
        """``task_fn`` on each task in turn, the inner optimizer's state carried from one to the
        next; in training the last state is kept for the next meta-step."""
        optimizer = self.carried_optimizer()
        outputs = []
        for t in range(walk.num_tasks):
            outputs.append(
                task_fn(
                    walk.support_x[t], walk.support_y[t], walk.query_x[t], walk.query_y[t],
                    optimizer,
                )
            )  # fmt: skip
            optimizer = Continued(self.optimizer, optimizer.final, optimizer.done + self.steps)
        if self.training and not self._measuring:
            self.keep_state(optimizer, walk.num_tasks * self.steps)
        return tuple(torch.stack(column) for column in zip(*outputs, strict=True))

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Adapt on the whole support set at every one of ``steps`` steps; score the queries
        (evaluation: deterministic, so test episodes stay fixed)."""
        params, buffers = module_state(self.model)
        names = select_adaptable(params, None)

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            xs, ys = sx.expand(steps, *sx.shape), sy.expand(steps, *sy.shape)
            optimizer = self.carried_optimizer() if self.carry_state else None
            fast = self.inner_loop(params, buffers, names, xs, ys, optimizer)
            predictions = functional_forward(self.model, fast, buffers, qx)
            return self.loss_fn(predictions, qy), predictions

        losses, predictions = self.per_task(task_fn, batch)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)

    def inner_loop(
        self,
        params: Params,
        buffers: Params,
        names: list[str],
        xs: Tensor,
        ys: Tensor,
        optimizer: InnerOptimizer | None = None,
    ) -> Params:
        """One step of ``optimizer`` (default: this learner's, fresh) per mini-batch ``xs[i],
        ys[i]`` from ``params``, no graph kept."""
        fixed = {n: p for n, p in params.items() if n not in names}

        def batch_loss(adapted: Params, step: int) -> Tensor:
            predictions = functional_forward(self.model, {**fixed, **adapted}, buffers, xs[step])
            return self.loss_fn(predictions, ys[step])

        with torch.no_grad():
            fast = descend(
                batch_loss, {n: params[n].detach() for n in names}, steps=xs.shape[0],
                lr=self.lr, optimizer=optimizer or self.optimizer,
            )  # fmt: skip
        return {**fixed, **fast}


def _buffer_name(slot: str, name: str) -> str:
    """The buffer of optimizer state ``slot`` for parameter ``name`` (no dots in buffer names)."""
    return f"{slot}/{name.replace('.', '/')}"


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
        carry_state=options.carry_state,
        strategy=settings.strategy, chunk_size=settings.chunk_size,
    )  # fmt: skip
