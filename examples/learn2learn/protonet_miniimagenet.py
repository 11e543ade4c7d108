#!/usr/bin/env python3
"""Prototypical Networks on mini-ImageNet with learn2learn's API: 30-way training episodes,
5-way 1-shot evaluation, the 4-block CNN backbone and ``partition_task``.

The same script runs on learn2learn itself: change only the import line (docs/MIGRATING.md).

    python examples/learn2learn/protonet_miniimagenet.py --root $FASTMETA_DATA --tiny
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import fastmeta.compat.learn2learn as l2l


def pairwise_distances_logits(queries, prototypes):
    return -((queries.unsqueeze(1) - prototypes.unsqueeze(0)) ** 2).sum(dim=2)


def accuracy(predictions, targets):
    return (predictions.argmax(dim=1).view(targets.shape) == targets).float().mean()


class Convnet(nn.Module):
    def __init__(self, x_dim=3, hid_dim=64):
        super().__init__()
        self.encoder = l2l.vision.models.CNN4Backbone(
            hidden_size=hid_dim, channels=x_dim, max_pool=True
        )

    def forward(self, x):
        return self.encoder(x)


def fast_adapt(model, batch, ways, shot, device):
    """The episode's loss and accuracy: queries scored against the support class means."""
    data, labels = (t.to(device) for t in batch)
    (support, _), (query, query_labels) = l2l.data.partition_task(data, labels, shots=shot)
    embeddings = model(torch.cat([support, query]))
    prototypes = embeddings[: len(support)].reshape(ways, shot, -1).mean(dim=1)
    logits = pairwise_distances_logits(embeddings[len(support) :], prototypes)
    return F.cross_entropy(logits, query_labels), accuracy(logits, query_labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epoch", type=int, default=250)
    parser.add_argument("--episodes", type=int, default=100, help="training episodes per epoch")
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--test-way", type=int, default=5)
    parser.add_argument("--test-shot", type=int, default=1)
    parser.add_argument("--test-query", type=int, default=30)
    parser.add_argument("--train-query", type=int, default=15)
    parser.add_argument("--train-way", type=int, default=30)
    parser.add_argument("--valid-episodes", type=int, default=200)
    parser.add_argument("--test-episodes", type=int, default=2000)
    parser.add_argument("--root", default="~/data")
    parser.add_argument("--tiny", action="store_true", help="1 epoch of 2 small episodes")
    args = parser.parse_args(argv)
    if args.tiny:
        args.max_epoch, args.episodes, args.valid_episodes, args.test_episodes = 1, 2, 2, 2
        args.train_way, args.train_query, args.test_query = 5, 2, 2

    torch.manual_seed(43)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = Convnet().to(device)
    tasksets = l2l.vision.benchmarks.get_tasksets(
        "mini-imagenet",
        train_ways=args.train_way,
        train_samples=args.shot + args.train_query,
        test_ways=args.test_way,
        test_samples=args.test_shot + args.test_query,
        root=args.root,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)

    for epoch in range(1, args.max_epoch + 1):
        model.train()
        total_loss = total_acc = 0.0
        for _ in range(args.episodes):
            loss, acc = fast_adapt(
                model, tasksets.train.sample(), args.train_way, args.shot, device
            )
            total_loss += loss.item()
            total_acc += acc.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        lr_scheduler.step()
        print(
            f"epoch {epoch}, train, loss={total_loss / args.episodes:.4f} "
            f"acc={total_acc / args.episodes:.4f}"
        )

        model.eval()
        total_loss = total_acc = 0.0
        with torch.no_grad():
            for _ in range(args.valid_episodes):
                loss, acc = fast_adapt(
                    model, tasksets.validation.sample(), args.test_way, args.test_shot, device
                )
                total_loss += loss.item()
                total_acc += acc.item()
        print(
            f"epoch {epoch}, val, loss={total_loss / args.valid_episodes:.4f} "
            f"acc={total_acc / args.valid_episodes:.4f}"
        )

    total_acc = 0.0
    with torch.no_grad():
        for _ in range(args.test_episodes):
            _, acc = fast_adapt(
                model, tasksets.test.sample(), args.test_way, args.test_shot, device
            )
            total_acc += acc.item()
    print(f"test accuracy {100 * total_acc / args.test_episodes:.2f} %")
    return {"test_accuracy": total_acc / args.test_episodes, "model": model}


if __name__ == "__main__":
    main()
