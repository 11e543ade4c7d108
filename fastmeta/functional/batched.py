"""Run a per-task function over a :class:`~fastmeta.tasks.TaskBatch`.

Two strategies give the same numbers: ``"vmap"`` runs the tasks of a chunk at once (many tiny
kernels become a few large ones), ``"loop"`` runs them one by one. ``"auto"`` (the default)
picks by device and workload, see :func:`plan`; ``chunk_size`` bounds how many tasks are in
flight at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import torch
from torch import Tensor

from fastmeta.functional.params import one_task_at_a_time
from fastmeta.tasks import TaskBatch

Strategy = Literal["auto", "vmap", "loop"]
STRATEGIES: tuple[str, ...] = ("auto", "vmap", "loop")
Out = TypeVar("Out")
TaskFn = Callable[[Tensor, Tensor, Tensor, Tensor], Out]

CPU_ELEMENTS_PER_CALL = 128_000
"""On a CPU, ``"auto"`` vmaps at most this many input elements (support and query of every task
of one call), 16 five-way one-shot Omniglot tasks with one query per class, and loops when fewer
than :data:`CPU_MIN_VMAP_TASKS` tasks fit in it or the batch (or ``chunk_size``) has fewer.

Measured on a 2-core CPU, one thread (Conv4 with BatchNorm, 5-way 1-shot Omniglot shapes): MAML
with 1 query per class (10 images a task) ran 140-157 tasks/s vmapped against 118 looped (second
order, meta-batch 32); with 15 queries per class (80 images) vmap in chunks of 6 ran 30-31
tasks/s against the loop's 48 (meta-batch 4), and ProtoNets (15 queries, meta-batch 32) 2.6-5.5
against 7.1. With a backward per chunk (:func:`backward_chunk`), chunks of 12-24 one-query tasks
beat one call over all 32 (second order: 159-164 against 137 tasks/s for 1 step, 36-37 against
32 for 5 steps; first order, 5 steps: 105 against 108), so the budget is 16 such tasks. With
only 4 one-query tasks the loop was faster (second order, 1 step: 122.7 against 107.5 tasks/s;
first order, 5 steps: 85.8 against 71.6); with 8, vmap (128.0 against 120.8).
"""
CPU_MIN_VMAP_TASKS = 8
CPU_MAX_VMAP_TASK_FLOPS = 200e6
"""On a CPU, ``"auto"`` loops when one task's forward (a learner's inner loop and its query
forward, counted by :meth:`~fastmeta.algorithms.MetaLearner.task_plan`) takes more floating-point
operations than this: the convolutions then do real work per image, and vmapping them only adds
overhead. Counted forward FLOPs of the workloads measured (Conv4-64 with BatchNorm, 5-way
1-shot): MAML with strided blocks and 1 query per class 0.105 GFLOP (vmap faster, above); with
15 queries 0.48 and ProtoNets 0.43 (the loop faster, above); MAML with max-pooled blocks at full
28x28 resolution and 1 query 0.39 GFLOP: the loop ran 54.8 tasks/s, vmap 43.7 (the speed issue's
measurement)."""


def check_strategy(strategy: str) -> None:
    """Raise ``ValueError`` listing the choices when ``strategy`` is not one of them."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class Plan:
    """How :func:`map_tasks` runs a batch: ``strategy`` over chunks of ``chunk_size`` tasks
    (``None``: the whole batch in one call)."""

    strategy: Literal["vmap", "loop"]
    chunk_size: int | None


def plan(
    strategy: str,
    batch: TaskBatch,
    chunk_size: int | None = None,
    task_flops: float | None = None,
) -> Plan:
    """The concrete strategy and chunk size for ``batch``; ``"vmap"`` and ``"loop"`` are kept.

    ``"auto"`` means vmap with the given chunks on accelerators. On a CPU it means a loop when
    one task's forward takes more than :data:`CPU_MAX_VMAP_TASK_FLOPS` (``task_flops``, when
    known), else vmap in chunks of at most :data:`CPU_ELEMENTS_PER_CALL` input elements (never
    more tasks than ``chunk_size``), and a loop when a chunk would hold fewer than
    :data:`CPU_MIN_VMAP_TASKS` tasks: they do not fit, or the batch or ``chunk_size`` is smaller.
    """
    check_strategy(strategy)
    if strategy != "auto":
        return Plan(cast(Literal["vmap", "loop"], strategy), chunk_size)  # checked, not "auto"
    if batch.device.type != "cpu":
        return Plan("vmap", chunk_size)
    if task_flops is not None and task_flops > CPU_MAX_VMAP_TASK_FLOPS:
        return Plan("loop", chunk_size)
    per_task = math.prod(batch.support_x.shape[1:]) + math.prod(batch.query_x.shape[1:])
    chunk = CPU_ELEMENTS_PER_CALL // max(per_task, 1)
    if chunk_size is not None:
        chunk = min(chunk, chunk_size)
    if min(chunk, batch.num_tasks) < CPU_MIN_VMAP_TASKS:
        return Plan("loop", chunk_size)
    return Plan("vmap", chunk)


def backward_chunk(
    strategy: str,
    batch: TaskBatch,
    chunk_size: int | None = None,
    task_flops: float | None = None,
) -> int | None:
    """Tasks per backward pass for a learner whose tasks are independent of each other.

    An explicit ``chunk_size`` is kept, and so is every strategy off the CPU. On a CPU,
    ``"auto"`` back-propagates each vmapped chunk of :func:`plan` as soon as it is computed, and
    each task when it loops, so one chunk's graph is alive at a time instead of the whole batch's.
    Measured (one thread, second order): the loop with 15 queries per class ran 42-43 tasks/s per
    task against 35-42 with one backward over the batch; the vmap numbers are under
    :data:`CPU_ELEMENTS_PER_CALL`.
    """
    if chunk_size is not None or strategy != "auto" or batch.device.type != "cpu":
        return chunk_size
    how = plan(strategy, batch, task_flops=task_flops)
    return 1 if how.strategy == "loop" else how.chunk_size


def map_tasks(
    fn: TaskFn[Out],
    batch: TaskBatch,
    strategy: str = "auto",
    chunk_size: int | None = None,
) -> Out:
    """``fn(support_x, support_y, query_x, query_y)`` for every task, stacked along dim 0.

    ``fn`` returns a tensor or a (nested) tuple/list/dict of tensors.
    """
    how = plan(strategy, batch, chunk_size)
    results: list[Out] = []
    for chunk in batch.chunks(how.chunk_size):
        tensors = (chunk.support_x, chunk.support_y, chunk.query_x, chunk.query_y)
        if how.strategy == "vmap":
            results.append(torch.func.vmap(fn, randomness="different")(*tensors))
        else:
            with one_task_at_a_time():
                per_task = [fn(*(t[i] for t in tensors)) for i in range(chunk.num_tasks)]
            results.append(_combine(per_task, torch.stack))
    combined: Out = results[0] if len(results) == 1 else _combine(results, torch.cat)
    return combined


def _combine(trees: list[Any], join: Callable[[list[Tensor]], Tensor]) -> Any:
    first = trees[0]
    if isinstance(first, Tensor):
        return join(trees)
    if isinstance(first, dict):
        return {k: _combine([t[k] for t in trees], join) for k in first}
    if isinstance(first, tuple | list):
        return type(first)(_combine([t[i] for t in trees], join) for i in range(len(first)))
    raise TypeError(
        f"per-task results must be tensors or tuples/lists/dicts of them, got {first!r}"
    )
