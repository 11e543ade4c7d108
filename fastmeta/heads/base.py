"""The two kinds of test-time head and the shared step of embedding an image episode."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from fastmeta.tasks import TaskBatch


@runtime_checkable
class FeatureHead(Protocol):
    """Query logits ``[B, Q, ways]`` from support features ``[B, S, D]`` with labels
    ``[B, S]`` in ``0..ways-1`` and query features ``[B, Q, D]``; the features are fixed."""

    def __call__(self, support: Tensor, support_y: Tensor, query: Tensor, ways: int) -> Tensor: ...


@runtime_checkable
class ImageHead(Protocol):
    """Query logits ``[B, Q, ways]`` from an image episode, adapting (a copy of) ``encoder``;
    ``encoder`` itself is left unchanged."""

    def adapt(self, encoder: nn.Module, batch: TaskBatch, ways: int) -> Tensor: ...


def embed_episodes(encoder: nn.Module, batch: TaskBatch, chunk: int = 256) -> tuple[Tensor, Tensor]:
    """``(support [B, S, D], query [B, Q, D])``: every image of ``batch`` through ``encoder``
    in eval mode without gradients (so a query's features never depend on the others'), in
    chunks of ``chunk`` images; the encoder's mode is restored."""
    tasks, shots = batch.support_y.shape
    queries = batch.query_y.shape[1]
    images = torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)])
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = torch.cat([encoder(images[i : i + chunk]) for i in range(0, len(images), chunk)])
    finally:
        encoder.train(training)
    split = tasks * shots
    return out[:split].view(tasks, shots, -1), out[split:].view(tasks, queries, -1)


def episode_ways(batch: TaskBatch) -> int:
    """The number of classes of the batch's tasks (labels are ``0..ways-1``)."""
    return int(batch.support_y.max()) + 1
