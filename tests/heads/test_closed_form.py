"""Ridge and SVM heads on fixed features: ridge against the primal normal equations, the SVM's
weights against the optimality of its primal problem (zero duality gap)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastmeta.heads.closed_form import SVM, Ridge


def data(tasks=2, ways=3, shots=3, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1)
    support = torch.randn(tasks, ways * shots, dim, generator=g, dtype=torch.float64)
    return support + F.one_hot(labels, dim).double(), labels


def test_ridge_matches_the_normal_equations():
    support, labels = data()
    query = torch.randn(2, 4, 6, dtype=torch.float64)
    logits = Ridge(ridge=0.7)(support, labels, query, 3)
    for t in range(2):
        x, y = support[t], F.one_hot(labels[t], 3).double()
        w = torch.linalg.solve(x.T @ x + 0.7 * torch.eye(6, dtype=x.dtype), x.T @ y)
        torch.testing.assert_close(logits[t], query[t] @ w)


def crammer_singer_primal(w, x, y, C):
    """1/2 |W|^2 + C * sum_i max_k (W_k x_i + [k != y_i] - W_{y_i} x_i)."""
    scores = x @ w.T
    margins = scores + 1 - F.one_hot(y, w.shape[0]).double() - scores.gather(1, y[:, None])
    return 0.5 * w.pow(2).sum() + C * margins.amax(1).sum()


def test_the_svm_weights_solve_the_primal():
    support, labels = data(tasks=1)
    C = 0.5
    # scores of the basis vectors are the class weights: W^T = svm(eye)
    weights = SVM(C=C)(support, labels, torch.eye(6, dtype=torch.float64)[None], 3)[0].T
    best = crammer_singer_primal(weights, support[0], labels[0], C)
    g = torch.Generator().manual_seed(3)
    for _ in range(200):  # no nearby point is better
        nearby = weights + 1e-3 * torch.randn(weights.shape, generator=g, dtype=torch.float64)
        assert crammer_singer_primal(nearby, support[0], labels[0], C) >= best - 1e-9
