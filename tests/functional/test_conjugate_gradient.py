"""Conjugate gradient and Hessian-vector products against direct linear algebra (float64)."""

from __future__ import annotations

import pytest
import torch

from fastmeta.functional.conjugate_gradient import (
    conjugate_gradient,
    dot,
    hessian_vector_product,
)


def random_spd(n: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(n, dtype=torch.float64)


def test_solves_a_positive_definite_system_split_over_a_dictionary():
    g = torch.Generator().manual_seed(0)
    matrix = random_spd(7, g)
    rhs = torch.randn(7, generator=g, dtype=torch.float64)

    def matvec(v):
        product = matrix @ torch.cat([v["a"].reshape(-1), v["b"]])
        return {"a": product[:4].reshape(2, 2), "b": product[4:]}

    solution = conjugate_gradient(matvec, {"a": rhs[:4].reshape(2, 2), "b": rhs[4:]}, 7)
    flat = torch.cat([solution["a"].reshape(-1), solution["b"]])
    torch.testing.assert_close(flat, torch.linalg.solve(matrix, rhs), rtol=1e-9, atol=1e-11)


def test_extra_iterations_after_convergence_change_nothing():
    g = torch.Generator().manual_seed(1)
    matrix = random_spd(3, g)
    rhs = {"x": torch.randn(3, generator=g, dtype=torch.float64)}
    solution = conjugate_gradient(lambda v: {"x": matrix @ v["x"]}, rhs, 50)
    assert torch.isfinite(solution["x"]).all()
    torch.testing.assert_close(solution["x"], torch.linalg.solve(matrix, rhs["x"]))


def test_zero_right_hand_side_gives_zero():
    solution = conjugate_gradient(lambda v: v, {"x": torch.zeros(3)}, 3)
    assert torch.equal(solution["x"], torch.zeros(3))


def test_refuses_zero_iterations():
    with pytest.raises(ValueError, match="at least 1 iteration"):
        conjugate_gradient(lambda v: v, {"x": torch.ones(2)}, 0)


def test_hessian_vector_product_matches_the_explicit_hessian():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(3, 2, generator=g, dtype=torch.float64)
    b = torch.randn(2, generator=g, dtype=torch.float64)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)

    def loss(p):
        return torch.tanh(x @ p["w"] + p["b"]).pow(3).sum()

    def flat_loss(vector):
        return loss({"w": vector[:6].reshape(3, 2), "b": vector[6:]})

    v = {"w": torch.randn(3, 2, generator=g, dtype=torch.float64), "b": torch.ones(2).double()}
    product = hessian_vector_product(loss, {"w": w, "b": b})(v)
    hessian = torch.autograd.functional.hessian(flat_loss, torch.cat([w.reshape(-1), b]))
    expected = hessian @ torch.cat([v["w"].reshape(-1), v["b"]])
    torch.testing.assert_close(torch.cat([product["w"].reshape(-1), product["b"]]), expected)
    assert float(dot(v, v)) == pytest.approx(
        float(torch.cat([v["w"].reshape(-1), v["b"]]).pow(2).sum())
    )
