"""Feature episodes are the image episodes, embedded: same seed, same classes and images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastmeta.data.store import ImageStore
from fastmeta.data.taskset import TaskSet
from fastmeta.features.episodes import FeatureStore, FeatureTaskSet
from fastmeta.features.extract import embed_store


def store(rotations: bool = False) -> ImageStore:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 6, 6), dtype=torch.uint8, generator=g)
    labels = torch.arange(8).repeat_interleave(5)
    built = ImageStore(images, labels, [f"c{i}" for i in range(8)])
    return built.with_rotations((0, 1)) if rotations else built


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 7))


def test_feature_episodes_are_the_embedded_image_episodes():
    for rotated in (False, True):
        s, net = store(rotated), encoder()
        features = FeatureStore(embed_store(net, s, batch_size=7, progress=False), s)
        images = TaskSet.from_store(s, 4, 2, 3, batch_size=5, seed=11)
        feats = FeatureTaskSet.from_features(features, 4, 2, 3, batch_size=5, seed=11)
        for a, b in zip(images.evaluation(12), feats.evaluation(12), strict=True):
            torch.testing.assert_close(
                net(a.support_x.flatten(0, 1)).view(b.support_x.shape), b.support_x
            )
            torch.testing.assert_close(
                net(a.query_x.flatten(0, 1)).view(b.query_x.shape), b.query_x
            )
            assert torch.equal(a.support_y, b.support_y) and torch.equal(a.query_y, b.query_y)
            assert torch.equal(a.classes, b.classes)


def test_embedding_restores_the_mode_and_takes_no_gradient():
    s, net = store(), encoder().train()
    out = embed_store(net, s, progress=False)
    assert net.training and not out.requires_grad and out.shape == (40, 7)


def test_batch_statistics_networks_are_refused():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten()
    )
    with pytest.raises(ValueError, match="uses batch statistics, so an image's features depend"):
        embed_store(net, store(), progress=False)
