"""Matching Networks against a per-query computation of the paper's attention."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms.matching import MatchingNetwork
from fastmeta.models import Conv4
from tests.reference import random_classification_batch


def reference_loss_and_log_probs(encoder, batch, scale):
    """For each query: softmax attention over cosine similarities to every support example,
    summed per class, then the negative log-probability of the true class."""
    losses, all_log_probs = [], []
    for task in batch:
        shots = len(task.support_y)
        embedded = encoder(torch.cat([task.support_x, task.query_x]))
        support, query = embedded[:shots], embedded[shots:]
        ways = int(task.support_y.max()) + 1
        rows = []
        for q in query:
            similarity = torch.stack([F.cosine_similarity(q, s, dim=0) for s in support])
            attention = torch.softmax(scale * similarity, dim=0)
            rows.append(torch.stack([attention[task.support_y == k].sum() for k in range(ways)]))
        log_probs = torch.stack(rows).log()
        losses.append(F.nll_loss(log_probs, task.query_y))
        all_log_probs.append(log_probs)
    return torch.stack(losses).mean(), torch.stack(all_log_probs)


@pytest.mark.parametrize("scale", [1.0, 7.0])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_loss_predictions_and_gradient_match_the_definition(scale, strategy):
    torch.manual_seed(0)
    encoder = Conv4(1, None, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=3, ways=4, shots=2, queries=2)
    model = MatchingNetwork(encoder, scale=scale, strategy=strategy)
    out = model(batch)
    grads = torch.autograd.grad(out.loss, list(encoder.parameters()))
    loss, log_probs = reference_loss_and_log_probs(encoder, batch, scale)
    expected = torch.autograd.grad(loss, list(encoder.parameters()))
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.predictions, log_probs.detach(), rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    assert torch.equal(out.accuracy, (log_probs.argmax(-1) == batch.query_y).float().mean(-1))


def test_probabilities_sum_to_one_and_evaluate_builds_no_graph():
    model = MatchingNetwork(Conv4(1, None, hidden=4, blocks=2), scale=20.0)
    out = model.evaluate(random_classification_batch())
    assert not out.loss.requires_grad
    torch.testing.assert_close(out.predictions.exp().sum(-1), torch.ones(3, 6))


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="scale must be positive"):
        MatchingNetwork(Conv4(1, None), scale=0.0)


@pytest.mark.skipif(
    not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA to the folder holding omniglot/"
)
def test_learns_on_real_omniglot(tmp_path):
    """30 steps of 4 tasks, 32-filter CNN, 100 test episodes of 5 queries per class. Measured
    (2026-11-26): 75.8 +- 2.5 %; chance is 20 %, the bound sits six CIs under the measurement."""
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    config = apply_overrides(
        load_config("matching-omniglot-5w1s"),
        ["train.iterations=30", "train.val_every=0", "train.checkpoint_every=30",
         "sampler.meta_batch=4", "sampler.test_queries=5", "eval.episodes=100",
         "model.hidden=32"],
    )  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["ways"] == 5 and report["shots"] == 1
    assert report["accuracy"]["mean"] > 0.60 and math.isfinite(report["loss"]["mean"])
