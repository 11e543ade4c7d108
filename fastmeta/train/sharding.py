"""Data-parallel meta-learning: each process takes its share of the tasks, results are combined.

Batch ``i`` of a task source is a function of ``(seed, i)``, so process ``r`` of ``K`` draws
only its own contiguous slice of the ``B`` episodes of batch ``i`` (shares differ by at most one
task when ``K`` does not divide ``B``). The meta-loss is the mean over tasks of per-task terms,
so the meta-gradient of the whole batch is the share-weighted sum of the processes' gradients:
one all-reduce over every parameter that requires grad (extra meta-parameters such as Meta-SGD's
learning rates included), whatever the algorithm. Evaluation splits the fixed episodes by whole
batches, exactly as one process would batch them, and gathers the per-episode scores in order,
so the numbers are the single-process numbers, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.tasks import TaskBatch, TaskSource
from fastmeta.train.distributed import Distributed
from fastmeta.train.evaluate import evaluate_episodes


def share(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, count)`` of ``rank``'s contiguous share of ``total`` items.

    The first ``total % world_size`` ranks take one item more than the others.
    """
    base, extra = divmod(total, world_size)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


def local_batch(source: TaskSource, index: int, d: Distributed) -> TaskBatch:
    """This process's share of batch ``index`` of ``source`` (the whole batch on one process)."""
    if not d.active:
        return source.batch(index)
    size = source.batch_size
    if size < d.world_size:
        raise ValueError(
            f"the meta-batch of {size} tasks cannot be split over {d.world_size} processes: each "
            f"needs at least one task; set sampler.meta_batch to a multiple of {d.world_size} or "
            "start fewer processes"
        )
    start, count = share(size, d.rank, d.world_size)
    return source.episodes(index * size + start, count)


def average_gradients(parameters: Iterable[nn.Parameter], d: Distributed, weight: float) -> None:
    """Replace each ``.grad`` by the sum over processes of ``weight * grad``.

    ``weight`` is this process's share of the batch (its tasks / all tasks), so each local
    gradient of a mean over its own tasks adds up to the gradient of the mean over all tasks. A
    parameter without a gradient on some process counts as zero there; one without a gradient on
    every process keeps ``grad=None``, so the optimizer skips it as it would on one process.
    """
    params = [p for p in parameters if p.requires_grad]
    if not d.active or not params:
        return
    has_grad = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.float32, device=params[0].device
    )
    d.all_reduce_sum(has_grad, "summing which parameters have meta-gradients")
    present = (has_grad > 0).tolist()  # one device-to-host copy, not one per parameter
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault((p.dtype, p.device), []).append(i)
    for members in groups.values():
        flat = torch.cat([_grad_or_zeros(params[i]).reshape(-1) for i in members]).mul_(weight)
        d.all_reduce_sum(flat, "averaging the meta-gradients")
        sizes = [params[i].numel() for i in members]
        parts = flat.split(sizes)  # type: ignore[no-untyped-call]  # torch: Tensor.split untyped
        for i, part in zip(members, parts, strict=True):
            params[i].grad = part.view_as(params[i]) if present[i] else None


def gather_output(local: MetaOutput, d: Distributed, total: int) -> MetaOutput:
    """The whole batch's output from every process's share (detached, in task order)."""
    if not d.active:
        return local
    start, count = share(total, d.rank, d.world_size)
    parts = [local.task_losses.reshape(count, 1), local.predictions.reshape(count, -1)]
    if local.accuracy is not None:
        parts.append(local.accuracy.reshape(count, 1))
    widths = [p.shape[1] for p in parts]
    # float64 holds float32/16 values exactly; rows of other ranks are zero, so the sum is a copy
    rows = torch.zeros(total, sum(widths), dtype=torch.float64, device=local.task_losses.device)
    rows[start : start + count] = torch.cat([p.detach().double() for p in parts], dim=1)
    d.all_reduce_sum(rows, "gathering the meta-batch's losses")
    columns = rows.split(widths, dim=1)  # type: ignore[no-untyped-call]  # torch: untyped
    losses = columns[0].reshape(total).to(local.task_losses.dtype)
    predictions = columns[1].reshape(total, *local.predictions.shape[1:])
    accuracy = None
    if local.accuracy is not None:
        accuracy = columns[2].reshape(total).to(local.accuracy.dtype)
    return MetaOutput(
        loss=losses.mean(),
        task_losses=losses,
        predictions=predictions.to(local.predictions.dtype),
        accuracy=accuracy,
    )


def gather_scores(
    evaluate: Callable[[TaskBatch], MetaOutput],
    source: TaskSource,
    num_episodes: int,
    d: Distributed,
) -> dict[str, Tensor]:
    """Per-episode scores of episodes ``0..num_episodes-1``, every process scoring some batches.

    The batches are those of ``source.evaluation(num_episodes)``; process ``r`` scores its
    contiguous share of them and every process gets all scores in episode order.
    """
    if not d.active:
        return evaluate_episodes(evaluate, source.evaluation(num_episodes))
    if num_episodes < 1:
        raise ValueError(f"the number of evaluation episodes must be positive, got {num_episodes}")
    size = source.batch_size
    starts = range(0, num_episodes, size)
    first, count = share(len(starts), d.rank, d.world_size)
    mine = starts[first : first + count]
    batches = (source.episodes(s, min(size, num_episodes - s)) for s in mine)
    local = evaluate_episodes(evaluate, batches) if mine else {}
    pieces = [p for p in d.all_gather_object(local, "gathering evaluation scores") if p]
    return {name: torch.cat([p[name] for p in pieces]) for name in pieces[0]}


def _grad_or_zeros(p: nn.Parameter) -> Tensor:
    return p.grad if p.grad is not None else torch.zeros_like(p)
