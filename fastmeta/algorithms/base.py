"""The contract every algorithm follows: ``forward(TaskBatch) -> MetaOutput``.

The trainer only calls ``output.loss.backward()`` and ``optimizer.step()``, so any algorithm
trains, evaluates, checkpoints and runs distributed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from fastmeta.functional.batched import Out, Plan, TaskFn, backward_chunk, map_tasks, plan
from fastmeta.functional.flops import FlopCount
from fastmeta.tasks import TaskBatch


@dataclass
class MetaOutput:
    """What an algorithm returns for a meta-batch.

    Attributes:
        loss: scalar, differentiable meta-loss (mean over tasks of the query loss).
        task_losses: ``[B]`` query loss of each task (detached).
        predictions: ``[B, Q, ...]`` query outputs of the adapted model (detached).
        accuracy: ``[B]`` query accuracy of each task, for classification; ``None`` otherwise.
    """

    loss: Tensor
    task_losses: Tensor
    predictions: Tensor
    accuracy: Tensor | None = None

    @classmethod
    def from_tasks(cls, losses: Tensor, predictions: Tensor, targets: Tensor) -> MetaOutput:
        """The output for per-task query ``losses [B]`` and ``predictions [B, Q, ...]``."""
        predictions = predictions.detach()
        return cls(
            loss=losses.mean(),
            task_losses=losses.detach(),
            predictions=predictions,
            accuracy=query_accuracy(predictions, targets),
        )


def query_accuracy(predictions: Tensor, targets: Tensor) -> Tensor | None:
    """Per-task accuracy ``[B]`` when targets are class indices, else ``None``."""
    if targets.dtype.is_floating_point or predictions.dim() != targets.dim() + 1:
        return None
    return (predictions.argmax(-1) == targets).float().mean(-1)


class MetaLearner(nn.Module):
    """Base class: subclasses implement :meth:`forward`; the rest comes for free."""

    strategy: str = "auto"
    chunk_size: int | None = None
    _measuring: bool = False
    independent_tasks: bool = False
    """True when :meth:`forward` is the mean over tasks of results computed task by task (by
    :func:`~fastmeta.functional.batched.map_tasks`) and changes no state across tasks, so a
    backward per chunk of tasks gives the same gradients and the same module."""

    def __init__(self) -> None:
        super().__init__()
        self._task_flops: dict[tuple[Any, ...], int] = {}  # by task shape, see task_plan

    def forward(self, batch: TaskBatch) -> MetaOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def start_step(self, step: int, total: int) -> None:
        """Called by the trainer before meta-step ``step`` (0-based) of ``total``.

        Schedules tied to training progress (an annealed outer step, loss weights, derivative
        order) read it here; being a function of the step alone keeps resume exact.
        """

    def evaluate(self, batch: TaskBatch) -> MetaOutput:
        """Scores on ``batch`` for evaluation; builds no graph. Algorithms with an inner loop
        override this to adapt with their test-time settings."""
        with torch.no_grad():
            output: MetaOutput = self(batch)
            return output

    def task_classifier(self, support_x: Tensor, support_y: Tensor) -> nn.Module:
        """A plain module mapping query images to logits for the classes of one support set,
        with no further adaptation (what ``fastmeta export`` saves). Learners that support it
        say so on their registry entry (``exports``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be exported as a classifier")

    def task_plan(self, batch: TaskBatch) -> Plan:
        """How this learner runs the tasks of ``batch``: :func:`~fastmeta.functional.batched.plan`
        given :meth:`task_flops`."""
        return plan(self.strategy, batch, self.chunk_size, self.task_flops(batch))

    def per_task(self, fn: TaskFn[Out], batch: TaskBatch) -> Out:
        """``map_tasks(fn, batch)`` with this learner's :meth:`task_plan`."""
        how = self.task_plan(batch)
        return map_tasks(fn, batch, how.strategy, how.chunk_size)

    def task_flops(self, batch: TaskBatch) -> int | None:
        """The floating-point operations of this learner's forward on one task of ``batch``'s
        shape, where ``"auto"`` on a CPU weighs them (else ``None``).

        Counted once per shape with torch's flop counter, on a copy of the random state and in
        eval mode (no statistic changes), so the choice it leads to is the same in every run
        and on resume.
        """
        if self.strategy != "auto" or batch.device.type != "cpu" or self._measuring:
            return None
        shape = _task_shape(batch)
        if shape not in self._task_flops:
            self._task_flops[shape] = self._count_task_flops(batch)
        return self._task_flops[shape]

    def counted_work(self, task: TaskBatch) -> None:
        """What :meth:`task_flops` counts on a one-task batch: the forward, unless a learner's
        per-task work is something else (the transfer baselines embed the task's images)."""
        self.forward(task)

    def _count_task_flops(self, batch: TaskBatch) -> int:
        modes = [(module, module.training) for module in self.modules()]
        self._measuring = True  # the forward below plans without counting again
        try:
            self.eval()
            counter = FlopCount()
            # autocast off: a bf16 copy of a weight cached here, with gradients off, would be
            # reused by the step's forward, and torch 2.4 then gives that weight no gradient
            no_autocast = torch.autocast(batch.device.type, enabled=False)
            with torch.random.fork_rng(devices=[]), torch.no_grad(), no_autocast, counter:
                self.counted_work(batch.slice(0, 1))
            return counter.total
        finally:
            self._measuring = False
            for module, training in modes:  # each as it was: a caller may have set a part apart
                module.training = training

    def default_backward_chunk(self, batch: TaskBatch) -> int | None:
        """Tasks per backward pass when :meth:`accumulate_gradients` is given no chunk size:
        for :attr:`independent_tasks` learners what
        :func:`~fastmeta.functional.batched.backward_chunk` picks for their strategy and work,
        else ``None`` (one backward over the batch)."""
        if not self.independent_tasks:
            return None
        return backward_chunk(self.strategy, batch, self.chunk_size, self.task_flops(batch))

    def accumulate_gradients(self, batch: TaskBatch, chunk_size: int | None) -> MetaOutput:
        """``forward(batch).loss.backward()`` in chunks of tasks, so memory stays bounded.

        Each chunk's loss is weighted by its share of the batch, so the accumulated ``.grad`` is
        the gradient of the whole-batch mean loss. Returns the whole batch's (detached) output.
        ``chunk_size=None`` takes :meth:`default_backward_chunk`.
        """
        if chunk_size is None:
            chunk_size = self.default_backward_chunk(batch)
        outputs: list[MetaOutput] = []
        for chunk in batch.chunks(chunk_size):
            out: MetaOutput = self(chunk)
            weighted = out.loss * (chunk.num_tasks / batch.num_tasks)
            weighted.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
            outputs.append(out)
        task_losses = torch.cat([o.task_losses for o in outputs])
        accuracy = None
        if outputs[0].accuracy is not None:
            # every chunk has an accuracy when the first has (the same targets' kind)
            accuracy = torch.cat([cast(Tensor, o.accuracy) for o in outputs])
        return MetaOutput(
            loss=task_losses.mean(),
            task_losses=task_losses,
            predictions=torch.cat([o.predictions for o in outputs]),
            accuracy=accuracy,
        )


def _task_shape(batch: TaskBatch) -> tuple[Any, ...]:
    """One task's shapes and dtypes (the batch size aside)."""
    tensors = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    return tuple((tuple(t.shape[1:]), t.dtype) for t in tensors)
