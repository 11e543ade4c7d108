#!/usr/bin/env python3
"""What moving from learn2learn's per-task loop to fastmeta's batched API buys, measured.

The same MAML meta-training step two ways, on real Omniglot (5-way 1-shot, one query per
class as in the examples, learn2learn's OmniglotCNN, second order, one inner step of 0.4):

- ``loop``: the compat layer as a learn2learn script uses it: ``tasksets.train.sample()`` and
  ``clone()`` / ``adapt()`` / ``backward()`` for each task of the meta-batch;
- ``batched``: the same ``MAML`` object called on a whole meta-batch drawn by fastmeta's
  ``TaskSet`` from the same image store: ``maml(batch).loss.backward()``.

Both first compute the meta-gradient of one meta-batch, which must agree. Rounds alternate,
so background load hits both alike; the medians of the rounds are reported, and the speed-up is
the median of the rounds' ratios.

    OMP_NUM_THREADS=1 python examples/learn2learn/migration_speed.py --root $FASTMETA_DATA
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import fastmeta.compat.learn2learn as l2l
from fastmeta.data import TaskSet
from fastmeta.tasks import TaskBatch

WAYS, SHOTS, QUERIES, LR = 5, 1, 1, 0.4


def loop_step(maml: l2l.algorithms.MAML, tasks: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """learn2learn's loop: adapt a clone per task on the even items, back-propagate the odd."""
    for data, labels in tasks:
        learner = maml.clone()
        learner.adapt(F.cross_entropy(learner(data[::2]), labels[::2]))
        (F.cross_entropy(learner(data[1::2]), labels[1::2]) / len(tasks)).backward()


def as_batch(tasks: list[tuple[torch.Tensor, torch.Tensor]]) -> TaskBatch:
    """The loop's tasks as one TaskBatch (even items support, odd items query)."""
    data = torch.stack([x for x, _ in tasks])
    labels = torch.stack([y for _, y in tasks])
    return TaskBatch(data[:, ::2], labels[:, ::2], data[:, 1::2], labels[:, 1::2])


def gradient(maml: l2l.algorithms.MAML, step: Callable[[], None]) -> list[torch.Tensor]:
    maml.zero_grad()
    step()
    return [p.grad.clone() for p in maml.parameters()]


def tasks_per_second(step: Callable[[], None], maml: l2l.algorithms.MAML, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        maml.zero_grad()
        step()
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="~/data")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="meta-steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="one round of one small step")
    args = parser.parse_args(argv)
    if args.tiny:
        args.meta_batch, args.steps, args.rounds = 4, 1, 1
    torch.set_num_threads(args.threads)
    random.seed(0)  # the tasks (the compat tasksets follow the global random state)
    torch.manual_seed(0)

    tasksets = l2l.vision.benchmarks.get_tasksets(
        "omniglot", train_ways=WAYS, train_samples=SHOTS + QUERIES, root=args.root
    )
    maml = l2l.algorithms.MAML(l2l.vision.models.OmniglotCNN(WAYS), lr=LR)
    taskset = TaskSet.from_store(tasksets.train.store, WAYS, SHOTS, QUERIES, args.meta_batch)
    batches = iter(taskset)

    tasks = [tasksets.train.sample() for _ in range(args.meta_batch)]
    looped = gradient(maml, lambda: loop_step(maml, tasks))
    batched = gradient(maml, lambda: maml(as_batch(tasks)).loss.backward())
    flat = [torch.cat([g.reshape(-1) for g in grads]) for grads in (looped, batched)]
    difference = float((flat[0] - flat[1]).norm() / flat[1].norm())

    def loop() -> None:
        loop_step(maml, [tasksets.train.sample() for _ in range(args.meta_batch)])

    def batch() -> None:
        maml(next(batches)).loss.backward()

    rates: dict[str, list[float]] = {"loop": [], "batched": []}
    for step in (loop, batch):  # warm-up
        tasks_per_second(step, maml, 1)
    for _ in range(args.rounds):
        rates["loop"].append(args.meta_batch * tasks_per_second(loop, maml, args.steps))
        rates["batched"].append(args.meta_batch * tasks_per_second(batch, maml, args.steps))
    result = {name: statistics.median(values) for name, values in rates.items()}
    ratios = [b / a for a, b in zip(rates["loop"], rates["batched"], strict=True)]
    result["speedup"] = statistics.median(ratios)
    result["gradient_difference"] = difference
    print(f"meta-gradients agree: relative difference {difference:.2e} (all parameters)")
    for name in ("loop", "batched"):
        values = ", ".join(f"{v:.1f}" for v in rates[name])
        print(f"{name:8s} {result[name]:7.1f} tasks/s (median of rounds: {values})")
    print(f"speed-up {result['speedup']:.2f}x, median of the rounds' "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); meta-batch {args.meta_batch}, "
          f"{args.threads} thread(s)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
