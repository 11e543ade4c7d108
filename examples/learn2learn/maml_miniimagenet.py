#!/usr/bin/env python3
"""MAML on mini-ImageNet with learn2learn's API: ``get_tasksets``, the 4-block CNN and the
MAML wrapper, 5-way 5-shot.

The same script runs on learn2learn itself: change only the import line (docs/MIGRATING.md).

    python examples/learn2learn/maml_miniimagenet.py --root $FASTMETA_DATA --tiny
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from torch import nn, optim

import fastmeta.compat.learn2learn as l2l


def accuracy(predictions, targets):
    return (predictions.argmax(dim=1).view(targets.shape) == targets).float().mean()


def fast_adapt(batch, learner, loss, adaptation_steps, device):
    """Adapt on the even items of the task, score the odd ones."""
    data, labels = (t.to(device) for t in batch)
    adaptation = torch.zeros(data.size(0), dtype=torch.bool)
    adaptation[::2] = True
    for _ in range(adaptation_steps):
        learner.adapt(loss(learner(data[adaptation]), labels[adaptation]))
    predictions = learner(data[~adaptation])
    return loss(predictions, labels[~adaptation]), accuracy(predictions, labels[~adaptation])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--meta-lr", type=float, default=0.003)
    parser.add_argument("--fast-lr", type=float, default=0.5)
    parser.add_argument("--meta-batch-size", type=int, default=32)
    parser.add_argument("--adaptation-steps", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=60000)
    parser.add_argument("--root", default="~/data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tiny", action="store_true", help="2 iterations of one 1-shot task")
    args = parser.parse_args(argv)
    if args.tiny:
        args.iterations, args.meta_batch_size, args.shots = 2, 1, 1

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tasksets = l2l.vision.benchmarks.get_tasksets(
        "mini-imagenet",
        train_samples=2 * args.shots,
        train_ways=args.ways,
        test_samples=2 * args.shots,
        test_ways=args.ways,
        root=args.root,
    )
    model = l2l.vision.models.MiniImagenetCNN(args.ways).to(device)
    maml = l2l.algorithms.MAML(model, lr=args.fast_lr, first_order=False)
    opt = optim.Adam(maml.parameters(), args.meta_lr)
    loss = nn.CrossEntropyLoss(reduction="mean")

    for iteration in range(args.iterations):
        opt.zero_grad()
        train_error = valid_error = valid_accuracy = 0.0
        for _ in range(args.meta_batch_size):
            learner = maml.clone()
            error, _ = fast_adapt(
                tasksets.train.sample(), learner, loss, args.adaptation_steps, device
            )
            error.backward()
            train_error += error.item()
            learner = maml.clone()
            error, acc = fast_adapt(
                tasksets.validation.sample(), learner, loss, args.adaptation_steps, device
            )
            valid_error += error.item()
            valid_accuracy += acc.item()
        for p in maml.parameters():
            p.grad.data.mul_(1.0 / args.meta_batch_size)
        opt.step()
        print(
            f"iteration {iteration}: train error {train_error / args.meta_batch_size:.4f}, "
            f"valid error {valid_error / args.meta_batch_size:.4f} "
            f"accuracy {valid_accuracy / args.meta_batch_size:.4f}"
        )

    test_error = test_accuracy = 0.0
    for _ in range(args.meta_batch_size):
        learner = maml.clone()
        error, acc = fast_adapt(
            tasksets.test.sample(), learner, loss, args.adaptation_steps, device
        )
        test_error += error.item()
        test_accuracy += acc.item()
    print(
        f"meta-test error {test_error / args.meta_batch_size:.4f} "
        f"accuracy {test_accuracy / args.meta_batch_size:.4f}"
    )
    return {
        "test_error": test_error / args.meta_batch_size,
        "test_accuracy": test_accuracy / args.meta_batch_size,
        "model": model,
    }


if __name__ == "__main__":
    main()
