"""BatchNorm fixed to the support set's statistics: the support scored as before, each query
on its own."""

from __future__ import annotations

import torch
from torch import nn

from fastmeta.predict.batchnorm import batch_statistics_layers, freeze_to_support


def network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5, track_running_stats=False),
    )  # fmt: skip


def test_support_keeps_its_outputs_and_queries_are_scored_alone() -> None:
    original = network()
    support, queries = torch.randn(10, 3, 8, 8), torch.randn(7, 3, 8, 8) * 3 + 1
    frozen = freeze_to_support(original, support)
    with torch.no_grad():
        torch.testing.assert_close(frozen(support), original(support))
        together = frozen(queries)
        alone = torch.cat([frozen(q[None]) for q in queries])
        transductive = original(queries)
    torch.testing.assert_close(alone, together)
    assert not torch.allclose(together, transductive, atol=1e-3)
    assert len(batch_statistics_layers(original)) == 2 and not batch_statistics_layers(frozen)


def test_a_network_without_batch_statistics_is_copied_unchanged() -> None:
    plain = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).eval()  # running statistics
    plain[1].running_mean.fill_(0.5)
    frozen = freeze_to_support(plain, torch.randn(4, 3))
    x = torch.randn(6, 3)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), plain(x))
    assert frozen is not plain and float(frozen[1].running_mean[0]) == 0.5
