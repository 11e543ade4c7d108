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


def embed_episodes(encoder: nn.Module, batch: TaskBatch) -> tuple[Tensor, Tensor]:
    """``(support [B, S, D], query [B, Q, D])``: each episode's images through ``encoder`` in
    one call, in eval mode without gradients; the encoder's mode is restored. With running
    BatchNorm statistics (pretrained backbones) a query's features never depend on the other
    images; a network with batch statistics (fastmeta's conv4, resnet12) sees the episode, as
    the metric learners' own evaluation does."""
    shots = batch.support_y.shape[1]
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = torch.stack(
                [
                    encoder(torch.cat([sx, qx]))
                    for sx, qx in zip(batch.support_x, batch.query_x, strict=True)
                ]
            )
    finally:
        encoder.train(training)
    return out[:, :shots], out[:, shots:]


def episode_ways(batch: TaskBatch) -> int:
    """The number of classes of the batch's tasks (labels are ``0..ways-1``)."""
    return int(batch.support_y.max()) + 1
