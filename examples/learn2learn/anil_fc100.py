#!/usr/bin/env python3
"""ANIL on FC100 with learn2learn's API: a shared convolutional body trained by the outer loop
and a linear head wrapped in MAML, the only part the inner loop adapts (Raghu et al. 2020).

The same script runs on learn2learn itself: change only the import line (docs/MIGRATING.md).

    python examples/learn2learn/anil_fc100.py --root $FASTMETA_DATA --tiny
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from torch import nn

import fastmeta.compat.learn2learn as l2l


def accuracy(predictions, targets):
    return (predictions.argmax(dim=1).view(targets.shape) == targets).float().mean()


def fast_adapt(batch, learner, features, loss, adaptation_steps, device):
    """Embed the task once, adapt the head on the even items, score the odd ones."""
    data, labels = (t.to(device) for t in batch)
    data = features(data)
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
    parser.add_argument("--meta-lr", type=float, default=0.001)
    parser.add_argument("--fast-lr", type=float, default=0.1)
    parser.add_argument("--adapt-steps", type=int, default=5)
    parser.add_argument("--meta-bsz", type=int, default=32)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--root", default="~/data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tiny", action="store_true", help="2 iterations of 2 one-shot tasks")
    args = parser.parse_args(argv)
    if args.tiny:
        args.iters, args.meta_bsz, args.shots, args.adapt_steps = 2, 2, 1, 2

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tasksets = l2l.vision.benchmarks.get_tasksets(
        "fc100",
        train_ways=args.ways,
        train_samples=2 * args.shots,
        test_ways=args.ways,
        test_samples=2 * args.shots,
        num_tasks=20000,
        root=args.root,
    )
    features = torch.nn.Sequential(
        l2l.vision.models.CNN4Backbone(hidden_size=64, channels=3, max_pool=True),
        l2l.nn.Lambda(lambda x: x.view(-1, 256)),
    ).to(device)
    head = l2l.algorithms.MAML(torch.nn.Linear(256, args.ways), lr=args.fast_lr).to(device)
    all_parameters = list(features.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(all_parameters, lr=args.meta_lr)
    loss = nn.CrossEntropyLoss(reduction="mean")

    for iteration in range(args.iters):
        optimizer.zero_grad()
        train_error = valid_error = valid_accuracy = 0.0
        for _ in range(args.meta_bsz):
            learner = head.clone()
            error, _ = fast_adapt(
                tasksets.train.sample(), learner, features, loss, args.adapt_steps, device
            )
            error.backward()
            train_error += error.item()
            learner = head.clone()
            error, acc = fast_adapt(
                tasksets.validation.sample(), learner, features, loss, args.adapt_steps, device
            )
            valid_error += error.item()
            valid_accuracy += acc.item()
        for p in all_parameters:
            p.grad.data.mul_(1.0 / args.meta_bsz)
        optimizer.step()
        print(
            f"iteration {iteration}: train error {train_error / args.meta_bsz:.4f}, "
            f"valid error {valid_error / args.meta_bsz:.4f} "
            f"accuracy {valid_accuracy / args.meta_bsz:.4f}"
        )

    test_accuracy = 0.0
    for _ in range(args.meta_bsz):
        learner = head.clone()
        _, acc = fast_adapt(
            tasksets.test.sample(), learner, features, loss, args.adapt_steps, device
        )
        test_accuracy += acc.item()
    print(f"meta-test accuracy {test_accuracy / args.meta_bsz:.4f}")
    return {"test_accuracy": test_accuracy / args.meta_bsz, "model": features}


if __name__ == "__main__":
    main()
