"""Tutorial 4: Reptile on Omniglot (Nichol, Achiam and Schulman 2018, "On First-Order
Meta-Learning Algorithms").

Reptile needs no second derivatives and no query set in training: it trains on each task for a
few steps and moves the initialisation towards the weights it reached. This script writes one
batched Reptile update out from the paper's Algorithm 2, checks that fastmeta's ``Reptile``
takes exactly that step, then trains with the paper's Omniglot settings (inner Adam with
beta1 = 0 on mini-batches, the outer step annealed linearly to 0) and tests.

    export FASTMETA_DATA=/path/to/data
    python tutorials/reptile.py --iterations 2000
    python tutorials/reptile.py --tiny          # seconds: what the test suite runs

``fastmeta train reptile-omniglot-5w1s`` is the preset of this training (100,000 iterations).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fastmeta.algorithms import Reptile
from fastmeta.data import TaskSet
from fastmeta.datasets import load_split
from fastmeta.functional.optimizers import SGD
from fastmeta.models import Conv4
from fastmeta.tasks import TaskBatch

WAYS = 5


def reptile_update_by_hand(
    model: nn.Module, batch: TaskBatch, inner_lr: float, k: int, epsilon: float
) -> dict[str, Tensor]:
    """The new initialisation after one batched Reptile iteration (Algorithm 2 of the paper),
    in plain PyTorch, with plain SGD as the inner optimizer on each task's whole support set."""
    theta = {name: p.detach() for name, p in model.named_parameters()}
    mean_difference = {name: torch.zeros_like(p) for name, p in theta.items()}
    for task in batch:
        # W_i = U^k_τi(θ): k steps of SGD on task τi, starting from θ
        w = dict(theta)
        for _ in range(k):
            w = {name: p.clone().requires_grad_() for name, p in w.items()}
            loss = F.cross_entropy(functional_call(model, w, (task.support_x,)), task.support_y)
            grads = torch.autograd.grad(loss, list(w.values()))
            # one SGD step on the task's support loss: W ← W − lr ∇_W L_τi(W)
            steps = zip(w.items(), grads, strict=True)
            w = {name: (p - inner_lr * g).detach() for (name, p), g in steps}
        for name in theta:
            mean_difference[name] += (w[name] - theta[name]) / len(batch)  # (1/n) Σ_i (W_i − θ)
    # θ ← θ + ε (1/n) Σ_{i=1}^{n} (W_i − θ)
    return {name: theta[name] + epsilon * mean_difference[name] for name in theta}


def check_the_update(batch: TaskBatch) -> float:
    """fastmeta's Reptile with an outer SGD step of lr 1 moves θ exactly as the paper's rule."""
    torch.manual_seed(1)
    model = Conv4(1, WAYS)
    inner_lr, k, epsilon = 0.05, 3, 0.5
    expected = reptile_update_by_hand(model, batch, inner_lr, k, epsilon)
    # inner plain SGD, whole support set per step (inner_batch=None), ε constant (no annealing)
    reptile = Reptile(
        model, lr=inner_lr, steps=k, optimizer=SGD(), outer_lr=epsilon, final_outer_lr=epsilon
    )
    # fastmeta's meta-loss is the surrogate ε/2 · mean_i ||θ − stop_grad(W_i)||², whose gradient
    # is ε (θ − mean_i W_i): one SGD step with lr 1 is the Reptile update
    outer = torch.optim.SGD(reptile.parameters(), lr=1.0)
    reptile.start_step(0, 1)
    outer.zero_grad()
    reptile(batch).loss.backward()
    outer.step()
    gap = max((p - expected[name]).abs().max().item() for name, p in model.named_parameters())
    assert gap < 1e-5, f"Reptile's step differs from the paper's rule by {gap:.2e}"
    return gap


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="Reptile on Omniglot")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--root", help="the omniglot folder (default $FASTMETA_DATA/omniglot)")
    parser.add_argument("--tiny", action="store_true", help="3 steps, 10 test tasks of 5 steps")
    args = parser.parse_args(argv)
    test_steps = 50
    if args.tiny:
        args.iterations, args.test_episodes, test_steps = 3, 10, 5

    train = load_split("omniglot", "train", args.root)  # the Vinyals split, as the paper
    test = load_split("omniglot", "test", args.root)
    # 10 training shots per class and 1 query (scored, not trained on); meta-batch of 5 tasks
    train_tasks = TaskSet.from_store(train, WAYS, 10, 1, batch_size=5, seed=0)
    # test: 5-way 1-shot, 1 query per class scored together with the support (transductive)
    test_tasks = TaskSet.from_store(test, WAYS, 1, 1, batch_size=50, seed=1)

    # 1. One update, against the rule written out.
    gap = check_the_update(train_tasks.batch(0))
    print(
        f"Reptile's step = θ + ε (1/n) Σ (W_i − θ), the paper's Algorithm 2 (difference {gap:.1e})"
    )

    # 2. Training with the paper's Omniglot settings: U^k is 5 steps of Adam (lr 1e-3, beta1 = 0)
    #    on mini-batches of 10 support images; ε anneals linearly from 1 to 0.
    torch.manual_seed(0)
    reptile = Reptile(
        Conv4(1, WAYS),
        lr=1e-3,
        steps=5,
        inner_batch=10,
        test_steps=test_steps,
        outer_lr=1.0,
        final_outer_lr=0.0,
    )
    outer = torch.optim.SGD(reptile.parameters(), lr=1.0)  # lr 1: exactly the Reptile step
    every = max(args.iterations // 10, 1)
    for step in range(args.iterations):
        reptile.start_step(step, args.iterations)  # ε = (1 − step/total) · 1 + step/total · 0
        out = reptile(train_tasks.batch(step))
        outer.zero_grad()
        out.loss.backward()
        outer.step()
        if step % every == 0 or step == args.iterations - 1:
            assert out.accuracy is not None
            print(
                f"step {step:5d}  ε {reptile.epsilon:.3f}  query accuracy after 5 steps "
                f"{out.accuracy.mean().item():.3f}"
            )

    # 3. Test: 50 inner steps on the 5 support images of each fixed test task.
    outputs = [reptile.evaluate(b) for b in test_tasks.evaluation(args.test_episodes)]
    scores = torch.cat([out.accuracy for out in outputs if out.accuracy is not None])
    mean = scores.mean().item()
    ci = 1.96 * scores.std().item() / math.sqrt(scores.numel())
    print(f"test accuracy over {scores.numel()} episodes: {100 * mean:.2f} +- {100 * ci:.2f} %")
    return {"accuracy": mean, "update_gap": gap}


if __name__ == "__main__":
    main()
