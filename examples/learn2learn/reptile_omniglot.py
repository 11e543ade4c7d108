#!/usr/bin/env python3
"""Reptile on Omniglot with learn2learn's API (Nichol et al. 2018): each task adapts a copy of
the network with Adam (beta1 = 0) on support mini-batches, and the initialisation moves
towards the adapted weights, with an outer step annealed linearly to zero.

The same script runs on learn2learn itself: change only the import line (docs/MIGRATING.md).

    python examples/learn2learn/reptile_omniglot.py --root $FASTMETA_DATA --tiny
"""

from __future__ import annotations

import argparse
import copy
import random

import numpy as np
import torch

import fastmeta.compat.learn2learn as l2l


def accuracy(predictions, targets):
    return (predictions.argmax(dim=1).view(targets.shape) == targets).float().mean()


def fast_adapt(batch, learner, adapt_opt, loss, adaptation_steps, batch_size, device):
    """Adapt on mini-batches of the even items, score the odd ones."""
    data, labels = (t.to(device) for t in batch)
    adaptation = torch.zeros(data.size(0), dtype=torch.bool)
    adaptation[::2] = True
    support, support_labels = data[adaptation], labels[adaptation]
    for _ in range(adaptation_steps):
        index = torch.randint(support.size(0), size=(batch_size,))
        adapt_opt.zero_grad()
        loss(learner(support[index]), support_labels[index]).backward()
        adapt_opt.step()
    predictions = learner(data[~adaptation])
    return loss(predictions, labels[~adaptation]), accuracy(predictions, labels[~adaptation])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--train-shots", type=int, default=10)
    parser.add_argument("--test-shots", type=int, default=5)
    parser.add_argument("--meta-lr", type=float, default=1.0)
    parser.add_argument("--meta-bsz", type=int, default=5)
    parser.add_argument("--fast-lr", type=float, default=0.001)
    parser.add_argument("--train-bsz", type=int, default=10)
    parser.add_argument("--test-bsz", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--test-steps", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=100000)
    parser.add_argument("--test-interval", type=int, default=100)
    parser.add_argument("--root", default="~/data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tiny", action="store_true", help="2 iterations of 2 tasks each")
    args = parser.parse_args(argv)
    if args.tiny:
        args.iterations, args.meta_bsz, args.train_steps, args.test_steps = 2, 2, 2, 2

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tasksets = l2l.vision.benchmarks.get_tasksets(
        "omniglot",
        train_ways=args.ways,
        train_samples=2 * args.train_shots,
        test_ways=args.ways,
        test_samples=2 * args.test_shots,
        root=args.root,
    )
    model = l2l.vision.models.OmniglotCNN(args.ways).to(device)
    opt = torch.optim.SGD(model.parameters(), args.meta_lr)
    loss = torch.nn.CrossEntropyLoss(reduction="mean")

    def adapted(batch, steps, batch_size):
        learner = copy.deepcopy(model)
        adapt_opt = torch.optim.Adam(learner.parameters(), lr=args.fast_lr, betas=(0.0, 0.999))
        error, acc = fast_adapt(batch, learner, adapt_opt, loss, steps, batch_size, device)
        return learner, error, acc

    for iteration in range(args.iterations):
        for group in opt.param_groups:  # the outer step, annealed linearly to zero
            group["lr"] = args.meta_lr * (1 - iteration / args.iterations)
        for p in model.parameters():
            p.grad = torch.zeros_like(p.data)
        train_error = 0.0
        for _ in range(args.meta_bsz):
            learner, error, _ = adapted(tasksets.train.sample(), args.train_steps, args.train_bsz)
            for p, q in zip(model.parameters(), learner.parameters(), strict=True):
                p.grad.data.add_(q.data, alpha=-1.0)  # sum of (init - adapted) after the step
            train_error += error.item()
        for p in model.parameters():  # grad = init - mean(adapted)
            p.grad.data.mul_(1.0 / args.meta_bsz).add_(p.data)
        opt.step()
        message = f"iteration {iteration}: train error {train_error / args.meta_bsz:.4f}"
        if iteration % args.test_interval == 0:
            valid_accuracy = sum(
                adapted(tasksets.validation.sample(), args.test_steps, args.test_bsz)[2].item()
                for _ in range(args.meta_bsz)
            )
            message += f", valid accuracy {valid_accuracy / args.meta_bsz:.4f}"
        print(message)

    test_accuracy = sum(
        adapted(tasksets.test.sample(), args.test_steps, args.test_bsz)[2].item()
        for _ in range(args.meta_bsz)
    )
    print(f"meta-test accuracy {test_accuracy / args.meta_bsz:.4f}")
    return {"test_accuracy": test_accuracy / args.meta_bsz, "model": model}


if __name__ == "__main__":
    main()
