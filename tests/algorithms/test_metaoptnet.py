"""MetaOptNet heads: the ridge head against the primal normal equations, the SVM head against
its primal (zero duality gap) and finite differences, the module against a per-task loop."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms.metaoptnet import MetaOptNet, ridge_regression_head, svm_dual, svm_head
from fastmeta.functional.qp import solve_qp
from fastmeta.models import Conv4
from fastmeta.tasks import TaskBatch
from tests.reference import random_classification_batch


def embeddings(tasks: int, shots: int, ways: int, dim: int, queries: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(tasks, shots * ways, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(ways).repeat(shots).expand(tasks, -1)
    query = torch.randn(tasks, queries, dim, generator=g, dtype=torch.float64)
    return support, labels, query


@pytest.mark.parametrize("dim", [3, 12])  # fewer and more features than support examples
def test_ridge_head_equals_the_primal_normal_equations(dim):
    support, labels, query = embeddings(tasks=2, shots=2, ways=3, dim=dim)
    ridge = 0.7
    scores = ridge_regression_head(support, labels, query, 3, ridge)
    for t in range(2):
        X, Y = support[t], F.one_hot(labels[t], 3).double()
        W = torch.linalg.solve(X.T @ X + ridge * torch.eye(dim, dtype=torch.float64), X.T @ Y)
        torch.testing.assert_close(scores[t], query[t] @ W, rtol=1e-10, atol=1e-12)


def svm_primal_and_dual(support, labels, alpha, C):
    """The Crammer-Singer primal objective at ``w(alpha)`` (slacks at their optimum) and the
    dual objective at ``alpha``, straight from their definitions."""
    ways = alpha.shape[-1]
    one_hot = F.one_hot(labels, ways).double()
    w = alpha.transpose(-1, -2) @ support  # [B, ways, D]
    scores = support @ w.transpose(-1, -2)  # [B, S, ways]
    margin_violation = 1 - one_hot - ((scores * one_hot).sum(-1, keepdim=True) - scores)
    slack = margin_violation.amax(-1)
    norm = 0.5 * w.pow(2).sum((-2, -1))
    return norm + C * slack.sum(-1), -norm + (alpha * one_hot).sum((-2, -1))


def test_svm_dual_solution_is_feasible_with_zero_duality_gap():
    """A feasible dual point whose objective equals the primal objective at ``w(alpha)`` is
    optimal for both problems (weak duality), so this certifies the solve independently."""
    support, labels, _ = embeddings(tasks=3, shots=2, ways=4, dim=5)
    C = 0.5
    alpha = solve_qp(*svm_dual(support, labels, 4, C), tol=1e-12).view(3, 8, 4)
    one_hot = F.one_hot(labels, 4).double()
    assert (alpha <= C * one_hot + 1e-9).all()
    assert alpha.sum(-1).abs().max() < 1e-9
    primal, dual = svm_primal_and_dual(support, labels, alpha, C)
    torch.testing.assert_close(primal, dual, rtol=0, atol=1e-8)
    assert (primal > 0).all()


def test_svm_head_scores_with_the_class_weights():
    support, labels, query = embeddings(tasks=2, shots=3, ways=3, dim=4)
    scores = svm_head(support, labels, query, 3, C=0.2, tol=1e-12)
    alpha = solve_qp(*svm_dual(support, labels, 3, 0.2), tol=1e-12).view(2, 9, 3)
    w = alpha.transpose(-1, -2) @ support
    torch.testing.assert_close(scores, query @ w.transpose(-1, -2), rtol=1e-10, atol=1e-12)


def test_svm_head_gradients_match_float64_finite_differences():
    support, labels, query = embeddings(tasks=2, shots=2, ways=2, dim=3, queries=2)
    inputs = (support.requires_grad_(), query.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda s, q: svm_head(s, labels, q, 2, C=0.3, tol=1e-12), inputs, eps=1e-6, atol=1e-5
    )


def reference(model: MetaOptNet, batch: TaskBatch):
    """Per-task loop with the model called directly; R2D2 through the primal solve."""
    losses, all_logits = [], []
    for task in batch:
        shots = len(task.support_y)
        embedded = model.encoder(torch.cat([task.support_x, task.query_x]))
        support, query = embedded[:shots], embedded[shots:]
        ways = int(task.support_y.max()) + 1
        if model.head == "r2d2":
            X, Y = support, F.one_hot(task.support_y, ways).to(support.dtype)
            eye = torch.eye(X.shape[1], dtype=X.dtype)
            W = torch.linalg.solve(X.T @ X + model.log_ridge.exp() * eye, X.T @ Y)
            logits = model.scale * (query @ W)
        else:
            raw = svm_head(support[None], task.support_y[None], query[None], ways, model.C, 1e-12)
            logits = model.scale * raw[0]
        losses.append(F.cross_entropy(logits, task.query_y))
        all_logits.append(logits)
    return torch.stack(losses).mean(), torch.stack(all_logits)


@pytest.mark.parametrize("head", ["r2d2", "svm"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_module_matches_a_per_task_loop(head, strategy):
    torch.manual_seed(0)
    encoder = Conv4(1, None, hidden=6, blocks=2).double()
    model = MetaOptNet(encoder, head, ridge=2.0, scale=3.0, tol=1e-12, strategy=strategy)
    model.double()
    b = random_classification_batch(tasks=2, ways=3, shots=2, queries=2)
    batch = TaskBatch(b.support_x.double(), b.support_y, b.query_x.double(), b.query_y)
    out = model(batch)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out.loss, params)
    loss, logits = reference(model, batch)
    expected = torch.autograd.grad(loss, params)
    # The batched QP iterates until every task converges, a lone task until it does: the SVM
    # solutions agree to the solver's tolerance (gradients less where constraints are nearly
    # degenerate), not to rounding.
    tol, grad_tol = (1e-9, 1e-9) if head == "r2d2" else (1e-7, 1e-6)
    torch.testing.assert_close(out.loss, loss, rtol=tol, atol=tol)
    torch.testing.assert_close(out.predictions, logits.detach(), rtol=tol, atol=tol)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=grad_tol)
    assert model.scale.grad is None and grads[params.index(model.scale)].abs() > 0
    if head == "r2d2":
        assert grads[params.index(model.log_ridge)].abs() > 0


def test_fixed_ridge_is_not_trained_and_evaluate_builds_no_graph():
    model = MetaOptNet(Conv4(1, None, hidden=4, blocks=2), "r2d2", learn_ridge=False)
    assert "log_ridge" not in dict(model.named_parameters())
    out = model.evaluate(random_classification_batch())
    assert not out.loss.requires_grad and out.accuracy is not None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="'r2d2' or 'svm'"):
        MetaOptNet(Conv4(1, None), "lasso")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        MetaOptNet(Conv4(1, None), "svm", C=0.0)


@pytest.mark.skipif(
    not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA to the folder holding omniglot/"
)
@pytest.mark.parametrize("preset", ["r2d2-omniglot-5w1s", "metaoptnet-svm-omniglot-5w1s"])
def test_learns_on_real_omniglot(tmp_path, preset):
    """30 steps of 4 tasks, 32-filter CNN, 100 test episodes of 5 queries per class. Measured
    (2026-11-26): R2D2 74.6 +- 2.3 %, SVM 71.4 +- 2.6 %; chance is 20 %, the bound sits four
    to six CIs under the measurements."""
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    config = apply_overrides(
        load_config(preset),
        ["train.iterations=30", "train.val_every=0", "train.checkpoint_every=30",
         "sampler.meta_batch=4", "sampler.test_queries=5", "eval.episodes=100",
         "model.hidden=32"],
    )  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["ways"] == 5 and report["shots"] == 1
    assert report["accuracy"]["mean"] > 0.60 and math.isfinite(report["loss"]["mean"])
