"""Tutorial 2: MAML on Omniglot 5-way 1-shot with the object API, ``clone()`` and ``adapt()``.

The setting of Finn et al. 2017 (Table 1): the 4-block convolutional network with BatchNorm, 5
classes per task, 1 support image per class, inner lr 0.4, 1 inner step in training and 3 at
test, meta-batch 32, Adam 1e-3. Each task is adapted in a Python loop, the way learn2learn's
tutorials write MAML; tutorial 3 runs the same meta-batch in one call.

    export FASTMETA_DATA=/path/to/data     # holds omniglot/images_background.zip, ...
    python tutorials/maml_omniglot_clone.py --iterations 2000
    python tutorials/maml_omniglot_clone.py --tiny     # seconds: what the test suite runs
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fastmeta.algorithms import MAML, Learner
from fastmeta.data import TaskSet
from fastmeta.datasets import load_split
from fastmeta.models import Conv4
from fastmeta.tasks import Task, TaskBatch

WAYS, SHOTS = 5, 1


def inner_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The support loss the inner loop descends.

    The paper (sec. 3.1) states the cross-entropy over the task's examples,
    L_Ti(f_φ) = Σ_{x_j, y_j ~ Ti} y_j log f_φ(x_j) + (1 − y_j) log(1 − f_φ(x_j)), here in its
    N-way softmax form. Its reference code sums it over the N·K support images and divides by K,
    i.e. N times the mean, so the paper's α = 0.4 is a step on 5 × the mean loss.
    """
    return WAYS * F.cross_entropy(logits, labels)


def adapted(maml: MAML, task: Task, steps: int, first_order: bool = False) -> Learner:
    """A learner adapted to ``task``'s support set: θ'_i after ``steps`` inner updates."""
    learner = maml.clone(first_order=first_order)  # starts at θ, differentiably linked to it
    for _ in range(steps):
        # θ'_i = θ − α ∇_θ L_Ti(f_θ)     (sec. 2.2; each further step starts from the last θ'_i)
        learner.adapt(inner_loss(learner(task.support_x), task.support_y))
    return learner


def meta_step(maml: MAML, batch: TaskBatch, optimizer: torch.optim.Optimizer) -> float:
    """One meta-update θ ← θ − β ∇_θ Σ_Ti L_Ti(f_θ'_i) (sec. 2.2), as the mean over the batch."""
    optimizer.zero_grad()
    accuracy = 0.0
    for task in batch:
        learner = adapted(maml, task, maml.steps)
        logits = learner(task.query_x)
        # L_Ti(f_θ'_i) on the query image of each class; backward per task keeps memory flat
        (F.cross_entropy(logits, task.query_y) / len(batch)).backward()
        accuracy += (logits.argmax(1) == task.query_y).float().mean().item() / len(batch)
    optimizer.step()
    return accuracy


def evaluate_accuracy(maml: MAML, tasks: TaskSet, episodes: int) -> tuple[float, float]:
    """Mean accuracy and its 95 % interval over the first ``episodes`` fixed test tasks,
    adapting with the test-time steps (first order: no graph is kept for a meta-gradient)."""
    scores = []
    for batch in tasks.evaluation(episodes):
        for task in batch:
            learner = adapted(maml, task, maml.test_steps, first_order=True)
            with torch.no_grad():
                logits = learner(task.query_x)
            scores.append((logits.argmax(1) == task.query_y).float().mean().item())
    values = torch.tensor(scores)
    return values.mean().item(), 1.96 * values.std().item() / math.sqrt(len(scores))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="MAML on Omniglot with clone()/adapt()")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--root", help="the omniglot folder (default $FASTMETA_DATA/omniglot)")
    parser.add_argument("--tiny", action="store_true", help="3 steps of 4 tasks, 10 test tasks")
    args = parser.parse_args(argv)
    if args.tiny:
        args.iterations, args.meta_batch, args.test_episodes = 3, 4, 10
    torch.manual_seed(0)

    # MAML's split of the characters (1100 / 100 / 423, each at four rotations), 28x28
    train = load_split("omniglot", "train", args.root, scheme="maml")
    test = load_split("omniglot", "test", args.root, scheme="maml")
    # one support and one query image per class, as the MAML paper's Omniglot protocol
    train_tasks = TaskSet.from_store(train, WAYS, SHOTS, 1, batch_size=args.meta_batch, seed=0)
    test_tasks = TaskSet.from_store(test, WAYS, SHOTS, 1, batch_size=50, seed=1)
    print(f"train: {train.num_classes} classes, test: {test.num_classes} classes")

    maml = MAML(Conv4(in_channels=1, out_features=WAYS), lr=0.4, steps=1, test_steps=3)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)  # β = 1e-3
    every = max(args.iterations // 10, 1)
    for step in range(args.iterations):
        accuracy = meta_step(maml, train_tasks.batch(step), optimizer)
        if step % every == 0 or step == args.iterations - 1:
            print(f"step {step:5d}  query accuracy after 1 step {accuracy:.3f}")

    mean, ci = evaluate_accuracy(maml, test_tasks, args.test_episodes)
    print(f"test accuracy over {args.test_episodes} episodes: {100 * mean:.2f} +- {100 * ci:.2f} %")
    return {"accuracy": mean}


if __name__ == "__main__":
    main()
