"""The differentiable QP solver against brute force, the KKT conditions and finite differences."""

from __future__ import annotations

import itertools

import pytest
import torch

from fastmeta.functional.qp import interior_point, solve_qp


def random_qp(batch: int, n: int, m: int, e: int, seed: int, singular: bool = False):
    """Feasible convex QPs (``z = 0`` is strictly feasible); ``Q`` is rank-deficient when
    ``singular``."""
    generator = torch.Generator().manual_seed(seed)
    rank = n - 2 if singular else n

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    factor = draw(batch, n, rank)
    Q = factor @ factor.mT + (0.0 if singular else 0.1) * torch.eye(n, dtype=torch.float64)
    G = draw(batch, m, n)
    h = torch.rand(batch, m, generator=generator, dtype=torch.float64) + 0.1
    A = draw(batch, e, n)
    return Q, draw(batch, n), G, h, A, torch.zeros(batch, e, dtype=torch.float64)


def brute_force(Q, p, G, h, A, b):
    """The minimiser of one QP by enumerating active sets: each candidate solves the equality
    QP with those inequalities tight; the feasible one with non-negative multipliers and the
    lowest objective wins."""
    n, m, e = len(p), len(h), len(b)
    best, best_value = None, float("inf")
    for size in range(m + 1):
        for active in itertools.combinations(range(m), size):
            rows = torch.cat([A, G[list(active)]])
            k = len(rows)
            system = torch.zeros(n + k, n + k, dtype=torch.float64)
            system[:n, :n], system[:n, n:], system[n:, :n] = Q, rows.T, rows
            rhs = torch.cat([-p, b, h[list(active)]])
            solution = torch.linalg.lstsq(system, rhs).solution
            z, multipliers = solution[:n], solution[n + e :]
            if (system @ solution - rhs).abs().max() > 1e-9:
                continue
            if (G @ z - h).max() > 1e-9 or (multipliers < -1e-9).any():
                continue
            value = float(objective(Q, p, z))
            if value < best_value:
                best, best_value = z, value
    return best


def objective(Q, p, z):
    return 0.5 * z @ Q @ z + p @ z


def test_solution_matches_brute_force():
    problems = random_qp(batch=3, n=4, m=5, e=1, seed=1)
    z = solve_qp(*problems)
    for i in range(3):
        expected = brute_force(*(x[i] for x in problems))
        torch.testing.assert_close(z[i], expected, rtol=0, atol=1e-7)


def test_singular_objective_reaches_the_brute_force_optimum():
    """With a rank-deficient ``Q`` the minimiser may not be unique; its value is."""
    Q, p, G, h, A, b = random_qp(batch=3, n=4, m=5, e=1, seed=6, singular=True)
    z = solve_qp(Q, p, G, h, A, b)
    for i in range(3):
        expected = brute_force(Q[i], p[i], G[i], h[i], A[i], b[i])
        assert (G[i] @ z[i] - h[i]).max() < 1e-8
        assert (A[i] @ z[i] - b[i]).abs().max() < 1e-8
        torch.testing.assert_close(
            objective(Q[i], p[i], z[i]), objective(Q[i], p[i], expected), rtol=0, atol=1e-8
        )


def test_solution_satisfies_the_kkt_conditions():
    Q, p, G, h, A, b = random_qp(batch=4, n=8, m=12, e=3, seed=2)
    s = interior_point(Q, p, G, h, A, b, tol=1e-11)
    z, lam, nu = s.z, s.lam, s.nu
    stationarity = (Q @ z.unsqueeze(-1)).squeeze(-1) + p + (G.mT @ lam.unsqueeze(-1)).squeeze(-1)
    stationarity = stationarity + (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
    constraint = (G @ z.unsqueeze(-1)).squeeze(-1) - h
    assert stationarity.abs().max() < 1e-8
    assert constraint.max() < 1e-8
    assert ((A @ z.unsqueeze(-1)).squeeze(-1) - b).abs().max() < 1e-8
    assert lam.min() >= 0
    assert (lam * constraint).abs().max() < 1e-8
    assert (lam > 1e-6).any() and (constraint < -1e-6).any()  # some active, some inactive


def test_without_equality_constraints_and_in_float32():
    Q, p, G, h, _, _ = random_qp(batch=2, n=5, m=7, e=0, seed=3)
    z64 = solve_qp(Q, p, G, h)
    z32 = solve_qp(*(x.float() for x in (Q, p, G, h)))
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32, z64.float(), rtol=1e-5, atol=1e-5)
    for i in range(2):
        empty = torch.zeros(0, 5, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        expected = brute_force(Q[i], p[i], G[i], h[i], *empty)
        torch.testing.assert_close(z64[i], expected, rtol=0, atol=1e-7)


def test_equality_constraints_only_match_the_kkt_solve():
    Q, p, _, _, A, b = random_qp(batch=2, n=4, m=0, e=2, seed=7)
    b = torch.randn(2, 2, dtype=torch.float64)
    z = solve_qp(Q, p, torch.zeros(2, 0, 4, dtype=torch.float64), torch.zeros(2, 0), A, b)
    for i in range(2):
        system = torch.cat(
            [torch.cat([Q[i], A[i].T], 1), torch.cat([A[i], torch.zeros(2, 2)], 1)]
        ).double()
        expected = torch.linalg.solve(system, torch.cat([-p[i], b[i]]))[:4]
        torch.testing.assert_close(z[i], expected, rtol=0, atol=1e-9)


def test_gradients_match_float64_finite_differences():
    inputs = [x.requires_grad_() for x in random_qp(batch=2, n=4, m=6, e=2, seed=4)]
    assert torch.autograd.gradcheck(
        lambda *args: solve_qp(*args, tol=1e-12), inputs, eps=1e-6, atol=1e-5, rtol=1e-4
    )


def test_infeasible_problem_is_reported():
    # z <= -1 and -z <= -1 (z >= 1) cannot both hold.
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    G = torch.tensor([[[1.0], [-1.0]]], dtype=torch.float64)
    h = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="did not converge"):
        solve_qp(one, torch.zeros(1, 1, dtype=torch.float64), G, h, max_iter=30)


def test_bad_shapes_are_refused():
    Q, p, G, h, A, b = random_qp(batch=2, n=3, m=4, e=1, seed=5)
    with pytest.raises(ValueError, match="h must have shape"):
        solve_qp(Q, p, G, h[:, :2], A, b)
    with pytest.raises(ValueError, match="both A and b"):
        solve_qp(Q, p, G, h, A)
