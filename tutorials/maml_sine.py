"""Tutorial 1: MAML on sine waves (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", section 5.1).

A task is a sine curve y = A sin(x - phi), A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]. From K
points of a new curve, the network should predict the whole curve after a few gradient steps.
MAML learns the initial weights that make those few steps work.

    python tutorials/maml_sine.py                   # the paper's 70,000 iterations
    python tutorials/maml_sine.py --iterations 2000 # a quick look
    python tutorials/maml_sine.py --tiny            # seconds: what the test suite runs

The same training as a command, with validation, checkpoints and a report:
``fastmeta train sine-maml``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fastmeta.algorithms import MAML
from fastmeta.datasets.sine import SineTasks
from fastmeta.models import MLP
from fastmeta.tasks import TaskBatch


def maml_loss_by_hand(model: nn.Module, batch: TaskBatch, alpha: float) -> Tensor:
    """MAML's meta-loss written out from the paper's equations, one task at a time, in plain
    PyTorch (no fastmeta): what ``MAML(model, lr=alpha, steps=1)(batch).loss`` computes."""
    theta = dict(model.named_parameters())
    query_losses = []
    for task in batch:
        # L_Ti(f_θ) on the task's K support points; the paper (sec. 3.1) writes the sum of
        # squared errors Σ_j ||f_φ(x_j) − y_j||², fastmeta's default is the mean (a constant
        # factor, which the learning rate α absorbs)
        support_loss = F.mse_loss(functional_call(model, theta, (task.support_x,)), task.support_y)
        # θ'_i = θ − α ∇_θ L_Ti(f_θ)                          (the inner update, sec. 2.2)
        grads = torch.autograd.grad(support_loss, list(theta.values()), create_graph=True)
        theta_i = {name: p - alpha * g for (name, p), g in zip(theta.items(), grads, strict=True)}
        # L_Ti(f_θ'_i): the adapted weights scored on the task's query points
        query_losses.append(
            F.mse_loss(functional_call(model, theta_i, (task.query_x,)), task.query_y)
        )
    # the meta-objective  min_θ Σ_{Ti ~ p(T)} L_Ti(f_θ'_i)  (sec. 2.2); fastmeta takes the mean
    # over the tasks of a meta-batch (the sum / B), which Adam's step does not notice
    return torch.stack(query_losses).mean()


def mean_and_ci(values: Tensor) -> tuple[float, float]:
    """The mean and the half-width of its 95 % interval, 1.96 std / sqrt(n)."""
    return values.mean().item(), 1.96 * values.std().item() / math.sqrt(values.numel())


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=70_000, help="meta-steps (paper)")
    parser.add_argument("--test-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="20 steps, 20 test tasks")
    args = parser.parse_args(argv)
    if args.tiny:
        args.iterations, args.test_tasks = 20, 20
    torch.manual_seed(args.seed)

    # The paper's regression network: 1 -> 40 -> 40 -> 1 with ReLU, initialised as its code does.
    model = MLP(1, [40, 40], 1, init="maml")
    alpha, beta = 0.01, 1e-3  # inner (task) and outer (meta) learning rates of the paper
    maml = MAML(model, lr=alpha, steps=1, test_steps=10)
    # K = 10 support and 10 query points per task, meta-batch of 25 tasks, episodes seeded
    train = SineTasks(shots=10, queries=10, seed=args.seed, batch_size=25)

    # 1. fastmeta's MAML runs the 25 inner loops at once; its meta-gradient is the paper's.
    batch = train.batch(0)
    params = list(model.parameters())
    by_hand = torch.autograd.grad(maml_loss_by_hand(model, batch, alpha), params)
    batched = torch.autograd.grad(maml(batch).loss, params)
    gap = max((a - b).abs().max().item() for a, b in zip(by_hand, batched, strict=True))
    scale = max(a.abs().max().item() for a in by_hand)
    assert gap <= 1e-4 * scale + 1e-7, f"meta-gradients differ by {gap:.2e}"
    print(f"meta-gradient: batched MAML = the equations written out (max difference {gap:.1e})")

    # 2. Meta-training: θ ← θ − β ∇_θ Σ_{Ti ~ p(T)} L_Ti(f_θ'_i)   (sec. 2.2; Adam, as the paper)
    optimizer = torch.optim.Adam(maml.parameters(), lr=beta)
    every = max(args.iterations // 10, 1)
    for step in range(args.iterations):
        out = maml(train.batch(step))  # the mean query loss after one inner step, per task
        optimizer.zero_grad()
        out.loss.backward()  # second order: through the inner step's gradient
        optimizer.step()
        if step % every == 0 or step == args.iterations - 1:
            print(f"step {step:6d}  meta-loss (query MSE after 1 step) {out.loss.item():.3f}")

    # 3. Test as the paper does: new tasks with K = 5 points, MSE on 100 points after 1, 5 and
    #    10 steps of plain SGD with lr α. The test tasks are fixed (their own seed).
    test = SineTasks(shots=5, queries=100, seed=1_000_003, batch_size=100)
    results = {}
    for steps in (1, 5, 10):
        losses = torch.cat(
            [maml.evaluate(b, steps=steps).task_losses for b in test.evaluation(args.test_tasks)]
        )
        mean, ci = mean_and_ci(losses)
        results[f"mse_{steps}_steps"] = mean
        print(
            f"test MSE after {steps:2d} steps: {mean:.3f} +- {ci:.3f} "
            f"(median {losses.median().item():.3f}, {losses.numel()} tasks)"
        )
    return results


if __name__ == "__main__":
    main()
