"""Prototypical Networks against a direct per-task computation of the paper's definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms.protonet import PrototypicalNetwork
from fastmeta.models import Conv4
from tests.reference import random_classification_batch


def reference_loss_and_logits(encoder, batch, distance):
    losses, all_logits = [], []
    for task in batch:
        embedded = encoder(torch.cat([task.support_x, task.query_x]))
        support, query = embedded[: len(task.support_y)], embedded[len(task.support_y) :]
        ways = int(task.support_y.max()) + 1
        prototypes = torch.stack([support[task.support_y == c].mean(0) for c in range(ways)])
        if distance == "cosine":
            logits = torch.stack(
                [F.cosine_similarity(q.unsqueeze(0), prototypes, dim=-1) for q in query]
            )
        else:
            logits = -(torch.cdist(query, prototypes) ** 2)
        losses.append(F.cross_entropy(logits, task.query_y))
        all_logits.append(logits)
    return torch.stack(losses).mean(), torch.stack(all_logits)


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_loss_logits_and_gradient_match_the_definition(distance, strategy):
    torch.manual_seed(0)
    encoder = Conv4(1, None, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=3, ways=4, shots=3, queries=2)
    protonet = PrototypicalNetwork(encoder, distance=distance, strategy=strategy)
    out = protonet(batch)
    grads = torch.autograd.grad(out.loss, list(encoder.parameters()))
    loss, logits = reference_loss_and_logits(encoder, batch, distance)
    expected = torch.autograd.grad(loss, list(encoder.parameters()))
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.predictions, logits.detach(), rtol=1e-4, atol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    assert torch.equal(out.accuracy, (logits.argmax(-1) == batch.query_y).float().mean(-1))


def test_evaluate_builds_no_graph():
    protonet = PrototypicalNetwork(Conv4(1, None, hidden=4, blocks=2))
    out = protonet.evaluate(random_classification_batch())
    assert not out.loss.requires_grad


def test_bad_distance_is_refused():
    with pytest.raises(ValueError, match="squared_euclidean"):
        PrototypicalNetwork(Conv4(1, None), distance="manhattan")  # type: ignore[arg-type]


def test_a_learned_scale_gets_the_gradient_of_the_loss_and_is_trained():
    """Meta-Baseline's temperature: d loss / d scale against central finite differences in
    float64, and an optimiser step moves it."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6)).double()
    batch = random_classification_batch(tasks=2, ways=3, shots=2, queries=2)
    batch = type(batch)(
        batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y
    )
    protonet = PrototypicalNetwork(encoder, distance="cosine", scale=10.0, learn_scale=True)
    assert isinstance(protonet.scale, torch.nn.Parameter)
    assert any(p is protonet.scale for p in protonet.parameters())
    (grad,) = torch.autograd.grad(protonet(batch).loss, [protonet.scale])

    def loss_at(scale: float) -> float:
        fixed = PrototypicalNetwork(encoder, distance="cosine", scale=scale)
        return fixed(batch).loss.detach().item()

    h = 1e-5
    numeric = (loss_at(10.0 + h) - loss_at(10.0 - h)) / (2 * h)
    assert grad.item() == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    optimizer = torch.optim.SGD([protonet.scale], lr=0.5)
    protonet(batch).loss.backward()
    optimizer.step()
    assert protonet.scale.detach().item() != 10.0
