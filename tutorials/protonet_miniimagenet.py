"""Tutorial 5: Prototypical Networks on mini-ImageNet (Snell, Swersky and Zemel 2017,
"Prototypical Networks for Few-shot Learning").

A class is represented by the mean of its support images' embeddings, its prototype; a query
is classified by a softmax over its negative squared distances to the prototypes. There is no
inner loop: the embedding network is trained end to end on episodes. This script writes the
episode loss out from the paper, checks fastmeta's ``PrototypicalNetwork`` against it, then
trains with the paper's mini-ImageNet protocol (more ways in training than at test, 15 queries
per class, Adam 1e-3 halved every 2000 episodes) and tests 5-way on 600 fixed episodes.

    export FASTMETA_DATA=/path/to/data      # holds miniimagenet/images/ and the split csvs
    python tutorials/protonet_miniimagenet.py --shots 1 --iterations 20000
    python tutorials/protonet_miniimagenet.py --tiny --root SMALL_COPY   # the test suite

The first load decodes the 60,000 images once into the cache ($FASTMETA_CACHE); later loads
read the cache. ``--tiny`` shrinks the run, not the data: the test suite points ``--root`` at a
copy of the real layout that holds a few real images of a few classes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fastmeta.algorithms import PrototypicalNetwork
from fastmeta.data import TaskSet
from fastmeta.datasets import load_split
from fastmeta.models import Conv4
from fastmeta.tasks import TaskBatch


def episode_loss_by_hand(encoder: torch.nn.Module, batch: TaskBatch, ways: int) -> Tensor:
    """The mean over the batch's episodes of the paper's loss J(φ), in plain PyTorch."""
    losses = []
    for task in batch:
        # f_φ of the support and query images, in one call: BatchNorm then normalises with the
        # statistics of the whole episode, as the paper's code does
        embedded = encoder(torch.cat([task.support_x, task.query_x]))
        support, query = embedded.split([len(task.support_x), len(task.query_x)])
        # c_k = (1 / |S_k|) Σ_{(x_i, y_i) ∈ S_k} f_φ(x_i)           (the prototypes, sec. 2.2)
        prototypes = torch.stack([support[task.support_y == k].mean(0) for k in range(ways)])
        # d(z, z') = ||z − z'||², the squared Euclidean distance
        distances = torch.cdist(query, prototypes) ** 2
        # p_φ(y = k | x) = exp(−d(f_φ(x), c_k)) / Σ_k' exp(−d(f_φ(x), c_k'))
        log_p = F.log_softmax(-distances, dim=1)
        # J(φ) = −log p_φ(y = k | x), averaged over the episode's queries
        losses.append(F.nll_loss(log_p, task.query_y))
    return torch.stack(losses).mean()


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="Prototypical Networks on mini-ImageNet")
    parser.add_argument("--shots", type=int, default=1, help="support images per class")
    parser.add_argument("--train-ways", type=int, default=None, help="default: 30 (1-shot), 20")
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--root", help="the miniimagenet folder ($FASTMETA_DATA/miniimagenet)")
    parser.add_argument("--tiny", action="store_true", help="32 px, 5-way, 3 steps, 10 tests")
    args = parser.parse_args(argv)
    train_ways = args.train_ways or (30 if args.shots == 1 else 20)  # the paper's choice
    if args.tiny:
        args.iterations, args.test_episodes, args.image_size = 3, 10, 32
        args.queries, train_ways = 2, 5
    torch.manual_seed(0)

    train = load_split("miniimagenet", "train", args.root, image_size=args.image_size)
    test = load_split("miniimagenet", "test", args.root, image_size=args.image_size)
    print(
        f"mini-ImageNet: {train.num_classes} training classes, {test.num_classes} test classes, "
        f"{args.image_size}x{args.image_size} colour"
    )
    train_tasks = TaskSet.from_store(
        train, train_ways, args.shots, args.queries, batch_size=1, seed=0
    )
    test_tasks = TaskSet.from_store(test, 5, args.shots, 15 if not args.tiny else 2, 50, seed=1)

    # The paper's embedding: 4 blocks of 64 3x3 filters, BatchNorm, ReLU, 2x2 max-pooling.
    encoder = Conv4(in_channels=3, out_features=None, hidden=64, downsample="maxpool")
    protonet = PrototypicalNetwork(encoder)  # squared Euclidean distance, as the paper

    # 1. fastmeta's loss (all episodes of a batch in one call) against the written-out one.
    batch = train_tasks.batch(0)
    ours, by_hand = protonet(batch).loss, episode_loss_by_hand(encoder, batch, train_ways)
    torch.testing.assert_close(ours, by_hand, rtol=1e-4, atol=1e-5)
    print(f"episode loss: PrototypicalNetwork = J(φ) written out ({ours.item():.4f})")

    # 2. Training: one episode per step; Adam 1e-3, halved every 2000 episodes (the paper).
    optimizer = torch.optim.Adam(protonet.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2000, gamma=0.5)
    every = max(args.iterations // 10, 1)
    for step in range(args.iterations):
        out = protonet(train_tasks.batch(step))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        schedule.step()
        if step % every == 0 or step == args.iterations - 1:
            assert out.accuracy is not None
            print(
                f"step {step:6d}  loss {out.loss.item():.3f}  "
                f"{train_ways}-way accuracy {out.accuracy.mean().item():.3f}"
            )

    # 3. Test: 5-way episodes of the test classes, fixed by their seed (BatchNorm normalises
    #    each episode with its own statistics, as in training and in the paper's code).
    outputs = [protonet.evaluate(b) for b in test_tasks.evaluation(args.test_episodes)]
    scores = torch.cat([out.accuracy for out in outputs if out.accuracy is not None])
    mean = scores.mean().item()
    ci = 1.96 * scores.std().item() / math.sqrt(scores.numel())
    print(
        f"test: 5-way {args.shots}-shot over {scores.numel()} episodes: "
        f"{100 * mean:.2f} +- {100 * ci:.2f} %"
    )
    return {"accuracy": mean, "loss": ours.item()}


if __name__ == "__main__":
    main()
