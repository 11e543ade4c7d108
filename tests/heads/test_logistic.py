"""Logistic regression reaches the optimum of its objective: checked against Newton's method
on the same objective written out here (explicit Hessian, float64)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastmeta.heads.logistic import LogisticRegression


def newton(x, y, ways, C, steps=8):
    """Minimise 1/2 |W|^2 + C * sum_i CE(W x_i + b, y_i) for one task by Newton's method."""
    dim = x.shape[1]

    def f(theta):
        w, b = theta[: ways * dim].view(ways, dim), theta[ways * dim :]
        return 0.5 * w.pow(2).sum() + C * F.cross_entropy(x @ w.T + b, y, reduction="sum")

    theta = torch.zeros(ways * dim + ways, dtype=torch.float64)
    for _ in range(steps):
        g = torch.autograd.functional.jacobian(f, theta, vectorize=True)
        h = torch.autograd.functional.hessian(f, theta, vectorize=True)
        # the bias is unpenalised and the softmax shift-invariant: a tiny ridge keeps H invertible
        theta = theta - torch.linalg.solve(h + 1e-10 * torch.eye(len(theta), dtype=h.dtype), g)
    return theta[: ways * dim].view(ways, dim), theta[ways * dim :]


def test_logistic_regression_matches_newton():
    g = torch.Generator().manual_seed(0)
    tasks, ways, shots, dim = 2, 3, 4, 5
    support = torch.randn(tasks, ways * shots, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1)
    support = support + 1.5 * F.one_hot(labels, dim).double()  # classes apart, not separable
    query = torch.randn(tasks, 7, dim, generator=g, dtype=torch.float64)
    head = LogisticRegression(C=2.0, normalize=False)
    logits = head(support, labels, query, ways)
    for t in range(tasks):
        w, b = newton(support[t], labels[t], ways, 2.0)
        expected = query[t] @ w.T + b
        # logits are defined up to a shift per query (the bias is unpenalised): compare softmax
        torch.testing.assert_close(logits[t].softmax(-1), expected.softmax(-1), atol=1e-6, rtol=0)
        fitted_w, _ = head.fit(support[t : t + 1], labels[t : t + 1], ways)
        torch.testing.assert_close(fitted_w[0], w, atol=1e-5, rtol=0)


def test_normalised_features_are_scale_free():
    g = torch.Generator().manual_seed(1)
    support = torch.randn(2, 6, 4, generator=g)
    labels = torch.arange(3).repeat_interleave(2).repeat(2, 1)
    query = torch.randn(2, 5, 4, generator=g)
    head = LogisticRegression()
    torch.testing.assert_close(
        head(support, labels, query, 3), head(10 * support, labels, 3 * query, 3), atol=1e-4, rtol=0
    )
