"""iMAML against a direct solve of its linear system with the explicit Hessian (float64)."""

from __future__ import annotations

import os

import pytest
import torch
from torch.func import functional_call

from fastmeta.algorithms.imaml import IMAML
from fastmeta.config import apply_overrides
from fastmeta.functional.conjugate_gradient import conjugate_gradient
from fastmeta.models import MLP, Conv4
from fastmeta.presets import load_config
from fastmeta.train.trainer import Trainer
from tests.reference import random_classification_batch, random_regression_batch, task_loss

LAMBDA, LR, STEPS = 2.0, 0.1, 30


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: dict) -> dict:
    out, start = {}, 0
    for name, p in like.items():
        out[name] = vector[start : start + p.numel()].reshape(p.shape)
        start += p.numel()
    return out


def direct_implicit_gradient(
    model, batch, proximal_steps=True, cg_damping=0.0, hessian_damping=0.0
) -> torch.Tensor:
    """Mean over tasks of ``solve(I + H/lambda, g)``: plain autograd, explicit Hessian. With
    the authors' settings: plain steps then one proximal step, ``solve((1 + cg_damping) I +
    H / (lambda + hessian_damping), g)``."""
    theta = {n: p.detach() for n, p in model.named_parameters()}
    grads = []
    for task in batch:

        def support(vector, x=task.support_x, y=task.support_y):
            return task_loss(functional_call(model, unflatten(vector, theta), (x,)), y)

        start = flat(theta.values())
        phi = start
        for _ in range(STEPS):
            phi = phi.requires_grad_()
            (g,) = torch.autograd.grad(support(phi), phi)
            pull = LAMBDA * (phi - start) if proximal_steps else 0.0
            phi = (phi - LR * (g + pull)).detach()
        if not proximal_steps:
            phi = phi - LR * LAMBDA * (phi - start)
        query = flat(theta.values()).new_zeros(()) + task_loss(
            functional_call(model, unflatten(phi.requires_grad_(), theta), (task.query_x,)),
            task.query_y,
        )
        (g_query,) = torch.autograd.grad(query, phi)
        hessian = torch.autograd.functional.hessian(support, phi.detach())
        system = (1 + cg_damping) * torch.eye(len(phi)) + hessian / (LAMBDA + hessian_damping)
        assert torch.linalg.eigvalsh(system).min() > 0, "test problem must be positive definite"
        grads.append(torch.linalg.solve(system, g_query))
    return torch.stack(grads).mean(0)


def imaml_gradient(model, batch, **kwargs) -> torch.Tensor:
    imaml = IMAML(model, lr=LR, steps=STEPS, regularization=LAMBDA, **kwargs)
    model.zero_grad()
    imaml(batch).loss.backward()
    return flat(p.grad for p in model.parameters())


def small_problem(kind: str):
    torch.manual_seed(0)
    if kind == "mlp":
        return MLP(1, [6], 1), random_regression_batch(tasks=2)
    return Conv4(1, 3, hidden=3, blocks=1), random_classification_batch(tasks=2, shape=(1, 4, 4))


@pytest.mark.parametrize("kind", ["mlp", "conv_bn"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_implicit_gradient_equals_direct_solve(float64, kind, strategy):
    model, batch = small_problem(kind)
    expected = direct_implicit_gradient(model, batch)
    actual = imaml_gradient(model, batch, cg_steps=len(expected) + 10, strategy=strategy)
    torch.testing.assert_close(actual, expected, rtol=1e-8, atol=1e-10)


AUTHORS = {"proximal_steps": False, "cg_damping": 1.0, "hessian_damping": 10.0}


@pytest.mark.parametrize("kind", ["mlp", "conv_bn"])
def test_authors_protocol_equals_direct_solve(float64, kind):
    """aravindr93/imaml_dev's Omniglot computation: plain inner steps, one proximal step, the
    damped system ``2 I + H / (lambda + 10)``."""
    model, batch = small_problem(kind)
    expected = direct_implicit_gradient(model, batch, **AUTHORS)
    actual = imaml_gradient(model, batch, cg_steps=len(expected) + 10, **AUTHORS)
    torch.testing.assert_close(actual, expected, rtol=1e-8, atol=1e-10)
    paper = direct_implicit_gradient(model, batch)
    assert (paper - expected).norm() > 1e-3 * expected.norm()  # a different gradient


def test_damping_makes_an_indefinite_system_solvable(float64):
    """Where the support Hessian has eigenvalues below -lambda (an untrained network), the
    undamped ``I + H / lambda`` is indefinite and 5 CG iterations leave a residual; the
    authors' damping keeps the system positive definite and CG solves it."""
    torch.manual_seed(0)
    h = torch.randn(12, 12)
    hessian = (h + h.T) / 2
    hessian = hessian + (-8.0 - torch.linalg.eigvalsh(hessian).min()) * torch.eye(12)
    g = torch.randn(12)

    def residual(identity, scale):
        def matvec(v):
            return {"x": identity * v["x"] + hessian @ v["x"] / scale}

        x = conjugate_gradient(matvec, {"x": g}, 5)["x"]
        return float((g - matvec({"x": x})["x"]).norm() / g.norm())

    assert torch.linalg.eigvalsh(torch.eye(12) + hessian / LAMBDA).min() < 0
    assert torch.linalg.eigvalsh(2 * torch.eye(12) + hessian / (LAMBDA + 10)).min() > 0
    assert residual(1.0, LAMBDA) > 0.1
    assert residual(2.0, LAMBDA + 10) < 1e-3


def test_test_regularization_zero_adapts_by_plain_steps(float64):
    model, batch = small_problem("mlp")
    plain = IMAML(model, lr=LR, steps=STEPS, regularization=LAMBDA, test_regularization=0.0)
    scores = plain.evaluate(batch)
    for t, task in enumerate(batch):
        fast = {n: p.detach() for n, p in model.named_parameters()}
        for _ in range(STEPS):
            fast = {n: p.requires_grad_() for n, p in fast.items()}
            loss = task_loss(functional_call(model, fast, (task.support_x,)), task.support_y)
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {n: (p - LR * g).detach() for (n, p), g in zip(fast.items(), grads, strict=True)}
        predictions = functional_call(model, fast, (task.query_x,))
        torch.testing.assert_close(scores.predictions[t], predictions)


def test_conjugate_gradient_converges_to_the_direct_solve(float64):
    model, batch = small_problem("mlp")
    expected = direct_implicit_gradient(model, batch)
    errors = [
        float((imaml_gradient(model, batch, cg_steps=k) - expected).norm() / expected.norm())
        for k in (1, 3, 8, 40)
    ]
    assert errors[-1] < 1e-10
    assert errors[0] > 1e-3  # one iteration is a real approximation, not the answer
    assert errors == sorted(errors, reverse=True)


def test_loss_value_is_the_query_loss_after_adaptation(float64):
    model, batch = small_problem("mlp")
    imaml = IMAML(model, lr=LR, steps=STEPS, regularization=LAMBDA)
    torch.testing.assert_close(imaml(batch).loss, imaml.evaluate(batch).loss)


def graph_size(tensor: torch.Tensor) -> int:
    """Number of autograd nodes reachable from ``tensor``."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def leaves(tensor: torch.Tensor) -> set[int]:
    """Ids of the leaf tensors the graph of ``tensor`` reaches."""
    found, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            found.add(id(node.variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_graph_does_not_grow_with_inner_steps(strategy):
    model, batch = small_problem("conv_bn")
    sizes = [graph_size(IMAML(model, steps=k, strategy=strategy)(batch).loss) for k in (1, 5, 20)]
    assert sizes[0] == sizes[1] == sizes[2]
    loss = IMAML(model, steps=5, strategy=strategy)(batch).loss
    assert leaves(loss) == {id(p) for p in model.parameters()}


def test_evaluate_builds_no_graph():
    model, batch = small_problem("conv_bn")
    assert not IMAML(model, steps=2).evaluate(batch).loss.requires_grad


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, "steps >= 1"),
        ({"regularization": 0.0}, "lambda"),
        ({"cg_steps": 0}, "cg"),
        ({"cg_damping": -1.0}, "must be >= 0"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IMAML(MLP(1, [4], 1), **kwargs)


@pytest.mark.slow  # minutes with the authors' computation (430 s on the shared 2-core VM)
@pytest.mark.skipif(
    not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA to the folder holding omniglot/"
)
def test_learns_on_real_omniglot(tmp_path):
    """The preset, shrunk (60 iterations of 4 tasks, 32 filters, 8 inner steps of lr 0.1 on 5 x
    the mean loss), through the trainer: measured 47.2 +- 4.6 % on 100 test episodes (13 s CPU
    for the whole process, one thread, 2026-11-26, with the paper's computation, before the
    preset took the authors'); chance is 20 %, the bound sits three CIs under the measurement.
    With the authors' computation it passes too (2026-12-01); not re-measured."""
    config = apply_overrides(
        load_config("imaml-omniglot-5w1s"),
        ["train.iterations=60", "train.val_every=0", "train.checkpoint_every=60",
         "sampler.meta_batch=4", "model.hidden=32", "algorithm.inner_steps=8",
         "algorithm.test_inner_steps=8", "algorithm.inner_loss_scale=5", "eval.episodes=100"],
    )  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["accuracy"]["mean"] > 0.33
