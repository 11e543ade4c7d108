"""Relation Networks against an explicit per-pair construction of the paper's scores."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms.relation import RelationNetwork
from fastmeta.config import apply_overrides
from fastmeta.models.relation import RelationModule, relation_encoder
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import RunConfig
from tests.reference import random_classification_batch


def reference_loss_and_scores(model: RelationNetwork, batch):
    """Class maps summed over each class's support examples; the relation module scores every
    (class map, query map) pair, built one by one in query-major order, in one call."""
    losses, all_scores = [], []
    for task in batch:
        shots = len(task.support_y)
        maps = model.encoder(torch.cat([task.support_x, task.query_x]))
        support, query = maps[:shots], maps[shots:]
        ways = int(task.support_y.max()) + 1
        classes = [support[task.support_y == k].sum(0) for k in range(ways)]
        pairs = torch.stack([torch.cat([classes[k], q]) for q in query for k in range(ways)])
        scores = model.relation(pairs).view(len(query), ways)
        if model.loss == "mse":
            scores = torch.sigmoid(scores)
            loss = ((scores - F.one_hot(task.query_y, ways).float()) ** 2).mean()
        else:
            loss = F.cross_entropy(scores, task.query_y)
        losses.append(loss)
        all_scores.append(scores)
    return torch.stack(losses).mean(), torch.stack(all_scores)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_loss_scores_and_gradient_match_the_definition(loss, strategy):
    torch.manual_seed(0)
    model = RelationNetwork(
        relation_encoder(1, hidden=4), RelationModule(4, hidden=4, fc_hidden=3), loss, strategy
    )
    batch = random_classification_batch(tasks=2, ways=3, shots=2, queries=2, shape=(1, 28, 28))
    out = model(batch)
    params = list(model.parameters())
    grads = torch.autograd.grad(out.loss, params)
    expected_loss, scores = reference_loss_and_scores(model, batch)
    expected = torch.autograd.grad(expected_loss, params)
    torch.testing.assert_close(out.loss, expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.predictions, scores.detach(), rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def test_encoder_gives_the_papers_map_and_small_maps_are_refused():
    assert relation_encoder(1, 64)(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 5, 5)
    with pytest.raises(ValueError, match="at least 4x4"):
        RelationModule(8)(torch.zeros(2, 16, 3, 3))


def test_flat_embeddings_are_refused():
    model = RelationNetwork(torch.nn.Flatten(), RelationModule(1))
    with pytest.raises(ValueError, match=r"feature maps \[N, C, H, W\]"):
        model(random_classification_batch())


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [
        (["model.hidden=4"], (1, 28, 28)),
        (["model.name=resnet12", "model.channels=[2,3,4,5]"], (1, 84, 84)),
    ],
    ids=["conv4", "resnet12"],
)
def test_builds_from_a_run_config_on_either_backbone(overrides, shape):
    """``conv4`` becomes the paper's encoder, ``resnet12`` its unpooled map (84 -> 5x5)."""
    config = apply_overrides(RunConfig(), ["algorithm.name=relation", *overrides])
    algorithm = build_algorithm(config, build_model(config, shape))
    out = algorithm(random_classification_batch(tasks=2, ways=3, shots=1, queries=1, shape=shape))
    assert out.predictions.shape == (2, 3, 3) and out.loss.requires_grad


@pytest.mark.skipif(
    not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA to the folder holding omniglot/"
)
def test_learns_on_real_omniglot(tmp_path):
    """30 steps of 4 tasks, 32-filter CNN, 100 test episodes of 5 queries per class. Measured
    (2026-11-26): 56.3 +- 2.7 %; chance is 20 %, the bound sits four CIs under the measurement."""
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    config = apply_overrides(
        load_config("relation-omniglot-5w1s"),
        ["train.iterations=30", "train.val_every=0", "train.checkpoint_every=30",
         "sampler.meta_batch=4", "sampler.test_queries=5", "eval.episodes=100",
         "model.hidden=32"],
    )  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["ways"] == 5 and report["shots"] == 1
    assert report["accuracy"]["mean"] > 0.45 and math.isfinite(report["loss"]["mean"])
