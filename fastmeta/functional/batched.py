"""Run a per-task function over a :class:`~fastmeta.tasks.TaskBatch`.

Two strategies give the same numbers: ``"vmap"`` runs all tasks of a chunk at once (what a GPU
wants: many tiny kernels become a few large ones), ``"loop"`` runs them one by one (what a small
CPU wants: on 2 cores a vmapped conv meta-batch was measured 3x slower and 4.5x larger in memory
than a loop). ``"auto"`` picks by device. ``chunk_size`` bounds how many tasks are in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import torch
from torch import Tensor

from fastmeta.tasks import TaskBatch

Strategy = Literal["auto", "vmap", "loop"]
STRATEGIES: tuple[str, ...] = ("auto", "vmap", "loop")
Out = TypeVar("Out")
TaskFn = Callable[[Tensor, Tensor, Tensor, Tensor], Out]


def check_strategy(strategy: str) -> None:
    """Raise ``ValueError`` listing the choices when ``strategy`` is not one of them."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def resolve_strategy(strategy: str, batch: TaskBatch) -> Literal["vmap", "loop"]:
    """The concrete strategy for ``batch``: ``"auto"`` means vmap on accelerators.

    On a CPU, vmap is chosen only for flat-feature tasks (inputs ``[B, N, F]``, e.g. sine
    regression), where per-task ops are too small for a loop to amortise; image tasks loop.
    """
    check_strategy(strategy)
    if strategy != "auto":
        return strategy  # type: ignore[return-value]
    if batch.device.type != "cpu":
        return "vmap"
    return "vmap" if batch.support_x.dim() <= 3 else "loop"


def map_tasks(
    fn: TaskFn,
    batch: TaskBatch,
    strategy: str = "auto",
    chunk_size: int | None = None,
) -> Out:
    """``fn(support_x, support_y, query_x, query_y)`` for every task, stacked along dim 0.

    ``fn`` returns a tensor or a (nested) tuple/list/dict of tensors.
    """
    mode = resolve_strategy(strategy, batch)
    results = []
    for chunk in batch.chunks(chunk_size):
        tensors = (chunk.support_x, chunk.support_y, chunk.query_x, chunk.query_y)
        if mode == "vmap":
            results.append(torch.func.vmap(fn, randomness="different")(*tensors))
        else:
            per_task = [fn(*(t[i] for t in tensors)) for i in range(chunk.num_tasks)]
            results.append(_combine(per_task, torch.stack))
    return results[0] if len(results) == 1 else _combine(results, torch.cat)


def _combine(trees: list, join: Callable[[list[Tensor]], Tensor]):
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
