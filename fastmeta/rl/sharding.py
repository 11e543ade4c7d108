"""Meta-RL across ``torchrun`` processes: each process samples and adapts its share of tasks.

The tasks of a meta-batch are split as the supervised trainer splits them
(:func:`fastmeta.train.sharding.share`); every objective is written as the sum over this
process's tasks divided by the whole batch's size, so summing over processes (one all-reduce,
:meth:`fastmeta.train.distributed.Distributed.all_reduce_sum`) gives the whole batch's mean,
its gradient, and TRPO's Fisher-vector products. Gradient steps use
:func:`fastmeta.train.sharding.average_gradients`, the supervised trainer's all-reduce.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fastmeta.functional.params import Params
from fastmeta.rl.tasks import Tasks
from fastmeta.train.distributed import Distributed
from fastmeta.train.sharding import average_gradients, share


@dataclass(frozen=True)
class Share:
    """This process's ``count`` tasks from ``start`` of a meta-batch of ``total``."""

    distributed: Distributed
    start: int
    count: int
    total: int

    @classmethod
    def of(cls, total: int, distributed: Distributed | None = None) -> Share:
        d = distributed or Distributed.current()
        if total < d.world_size:
            raise ValueError(
                f"a meta-batch of {total} tasks cannot be split over {d.world_size} processes; "
                f"set sampling.meta_batch to at least {d.world_size} or start fewer processes"
            )
        start, count = share(total, d.rank, d.world_size)
        return cls(d, start, count, total)

    def local(self, tasks: Tasks) -> Tasks:
        """This process's tasks of the whole batch ``tasks``."""
        return tasks.slice(self.start, self.count)

    def sum(self, value: Tensor) -> Tensor:
        """``value`` summed over the processes (a new tensor, no graph)."""
        total = value.detach().clone()
        return self.distributed.all_reduce_sum(total, "summing the meta-batch's objectives")

    def mean(self, per_task: Tensor) -> float:
        """The mean over the whole batch of per-task values ``[count]``."""
        return float(self.sum(per_task.sum()) / self.total)

    def sum_params(self, values: Params) -> Params:
        """Each tensor of ``values`` summed over the processes (one all-reduce)."""
        if not self.distributed.active:
            return values
        names = list(values)
        flat = self.sum(torch.cat([values[n].reshape(-1) for n in names]))
        parts = torch.split(flat, [values[n].numel() for n in names])
        return {n: p.view_as(values[n]) for n, p in zip(names, parts, strict=True)}

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Sum the ``.grad`` of local objectives (already divided by ``total``) over processes."""
        average_gradients(parameters, self.distributed, 1.0)
