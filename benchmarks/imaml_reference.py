"""An independent minimal iMAML, and fastmeta's IMAML compared with it step by step.

The reference works on one flat parameter vector per task and plain autograd; it shares no code
with ``fastmeta.algorithms.imaml`` except the network's forward. It is written from

- the paper (Rajeswaran et al. 2019): the inner problem (Eq. 4)
  ``phi = argmin L_train(phi) + lambda/2 ||phi - theta||^2``, the implicit meta-gradient
  (Eq. 6, Algorithm 2) ``(I + H/lambda)^-1 grad L_test(phi)`` by conjugate gradient; the
  Omniglot settings (section 5): 16 gradient-descent steps for 5-way, lambda 2, 5 CG steps,
  Adam outer steps, the MAML network;
- the authors' Omniglot protocol (``aravindr93/imaml_dev``, ``examples/omniglot_implicit_maml.py``
  and ``implicit_maml/learner_model.py``), read for what it computes: the inner loop is 16 plain
  SGD steps (lr 0.1) on the mean support loss *without* the proximal term, then one SGD step on
  ``lambda/2 ||phi - theta||^2`` alone (which shrinks ``phi - theta`` by ``1 - lr * lambda``); the
  CG system is ``(1 + cg_damping) I + H / (lambda + 10)`` with ``cg_damping = 1``; test-time
  adaptation is 16 plain steps (``measure_accuracy.py --lam 0.0``).

Run ``python -m benchmarks.imaml_reference [--run RUN_DIR]`` (real Omniglot from
``$FASTMETA_DATA``): on one meta-batch of the ``imaml-omniglot-5w1s`` preset, at the random
initialisation or at the weights of a run, it prints for each inner protocol how well the inner
problem is solved (stationarity residual, distance moved, support and query accuracy after
adaptation), the CG residual after ``cg_steps`` iterations, and the relative difference between
fastmeta's meta-gradient and this reference's, in float64.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

Vector = Tensor


@dataclass(frozen=True)
class Protocol:
    """How a task is adapted and how its meta-gradient's linear system reads.

    ``proximal_steps``: every inner step descends ``L + lambda/2 ||phi - theta||^2`` (the
    paper's Eq. 4 solved by gradient descent); otherwise the steps descend ``L`` alone and one
    last step descends the proximal term alone (the authors' code). The system is
    ``(1 + cg_damping) I + H / (lambda + hessian_damping)``.
    """

    lr: float = 0.1
    steps: int = 16
    regularization: float = 2.0
    proximal_steps: bool = True
    cg_steps: int = 5
    cg_damping: float = 0.0
    hessian_damping: float = 0.0


PAPER = Protocol()
AUTHORS = Protocol(proximal_steps=False, cg_damping=1.0, hessian_damping=10.0)
PROTOCOLS = {
    "paper": PAPER,
    "authors": AUTHORS,
    # one ingredient of the authors' code at a time: the damped system, the plain inner steps
    "paper-damped": Protocol(cg_damping=1.0, hessian_damping=10.0),
    "authors-undamped": Protocol(proximal_steps=False),
}


class FlatTask:
    """One task's losses as functions of a flat parameter vector."""

    def __init__(
        self, model: nn.Module, like: dict[str, Tensor], sx: Tensor, sy: Tensor, qx: Tensor,
        qy: Tensor,
    ) -> None:  # fmt: skip
        self.model, self.like = model, like
        self.sx, self.sy, self.qx, self.qy = sx, sy, qx, qy

    def unflatten(self, vector: Vector) -> dict[str, Tensor]:
        out, start = {}, 0
        for name, p in self.like.items():
            out[name] = vector[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return out

    def logits(self, vector: Vector, x: Tensor) -> Tensor:
        out: Tensor = functional_call(self.model, self.unflatten(vector), (x,))
        return out

    def support_loss(self, vector: Vector) -> Tensor:
        return F.cross_entropy(self.logits(vector, self.sx), self.sy)

    def query_loss(self, vector: Vector) -> Tensor:
        return F.cross_entropy(self.logits(vector, self.qx), self.qy)

    def accuracy(self, vector: Vector, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float((self.logits(vector, x).argmax(-1) == y).float().mean())


def gradient(loss: Callable[[Vector], Tensor], at: Vector) -> Vector:
    at = at.detach().requires_grad_()
    (g,) = torch.autograd.grad(loss(at), at)
    return g


def hvp(loss: Callable[[Vector], Tensor], at: Vector, v: Vector) -> Vector:
    at = at.detach().requires_grad_()
    (g,) = torch.autograd.grad(loss(at), at, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, at)
    return hv


def inner_solve(task: FlatTask, theta: Vector, p: Protocol, steps: int | None = None) -> Vector:
    """The adapted parameters under protocol ``p`` (no graph)."""
    phi = theta.clone()
    for _ in range(p.steps if steps is None else steps):
        g = gradient(task.support_loss, phi)
        if p.proximal_steps:
            g = g + p.regularization * (phi - theta)
        phi = phi - p.lr * g
    if not p.proximal_steps:
        phi = phi - p.lr * p.regularization * (phi - theta)
    return phi.detach()


def cg(matvec: Callable[[Vector], Vector], b: Vector, iterations: int) -> Vector:
    """Textbook conjugate gradient from zero (Nocedal and Wright, Algorithm 5.2)."""
    x, r = torch.zeros_like(b), b.clone()
    d, rr = r.clone(), r @ r
    for _ in range(iterations):
        ad = matvec(d)
        alpha = rr / (d @ ad)
        x, r = x + alpha * d, r - alpha * ad
        rr_new = r @ r
        d, rr = r + (rr_new / rr) * d, rr_new
    return x


def system(task: FlatTask, phi: Vector, p: Protocol) -> Callable[[Vector], Vector]:
    scale = p.regularization + p.hessian_damping
    return lambda v: (1 + p.cg_damping) * v + hvp(task.support_loss, phi, v) / scale


def meta_gradient(task: FlatTask, theta: Vector, p: Protocol) -> tuple[Vector, dict[str, float]]:
    """The task's meta-gradient and what the solve looked like on the way."""
    phi = inner_solve(task, theta, p)
    g_support = gradient(task.support_loss, phi)
    stationarity = g_support + p.regularization * (phi - theta)
    g_query = gradient(task.query_loss, phi)
    matvec = system(task, phi, p)
    x = cg(matvec, g_query, p.cg_steps)
    residual = g_query - matvec(x)
    return x, {
        "support_acc": task.accuracy(phi, task.sx, task.sy),
        "query_acc": task.accuracy(phi, task.qx, task.qy),
        "query_acc_before": task.accuracy(theta, task.qx, task.qy),
        "moved": float((phi - theta).norm()),
        "support_grad_norm": float(g_support.norm()),
        "proximal_residual": float(stationarity.norm() / g_support.norm()),
        "cg_residual": float(residual.norm() / g_query.norm()),
        "cos_first_order": float(F.cosine_similarity(x, g_query, dim=0)),
    }


def extreme_eigenvalues(task: FlatTask, at: Vector, iterations: int = 30) -> tuple[float, float]:
    """The largest and the smallest eigenvalue of the support-loss Hessian at ``at``, by power
    iteration on ``H`` and then on ``H - top * I``."""

    def power(matvec: Callable[[Vector], Vector]) -> float:
        v = torch.randn_like(at)
        v = v / v.norm()
        value = 0.0
        for _ in range(iterations):
            w = matvec(v)
            value = float(v @ w)
            v = w / w.norm()
        return value

    top = power(lambda v: hvp(task.support_loss, at, v))
    bottom = power(lambda v: hvp(task.support_loss, at, v) - abs(top) * v) + abs(top)
    return top, bottom


def flat_tasks(model: nn.Module, batch) -> tuple[Vector, list[FlatTask]]:  # type: ignore[no-untyped-def]
    like = {n: p.detach() for n, p in model.named_parameters()}
    theta = torch.cat([p.reshape(-1) for p in like.values()])
    tasks = [
        FlatTask(model, like, batch.support_x[t], batch.support_y[t], batch.query_x[t],
                 batch.query_y[t])
        for t in range(batch.num_tasks)
    ]  # fmt: skip
    return theta, tasks


def fastmeta_meta_gradient(model: nn.Module, batch, p: Protocol) -> Vector:  # type: ignore[no-untyped-def]
    """fastmeta's IMAML meta-gradient of the batch's mean query loss, flattened."""
    from fastmeta.algorithms.imaml import IMAML

    options = {}
    if not p.proximal_steps or p.cg_damping or p.hessian_damping:
        options = {
            "proximal_steps": p.proximal_steps,
            "cg_damping": p.cg_damping,
            "hessian_damping": p.hessian_damping,
        }
    imaml = IMAML(
        model, lr=p.lr, steps=p.steps, regularization=p.regularization, cg_steps=p.cg_steps,
        strategy="loop", **options,
    )  # fmt: skip
    model.zero_grad()
    imaml(batch).loss.backward()
    return torch.cat([q.grad.reshape(-1) for q in model.parameters()])  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run directory whose final weights to load")
    parser.add_argument("--tasks", type=int, default=8, help="tasks of the batch to compare")
    parser.add_argument("--batch-index", type=int, default=0)
    parser.add_argument("--protocols", default="paper,authors", help=", ".join(PROTOCOLS))
    parser.add_argument("--compare", action="store_true", help="also compare with fastmeta")
    parser.add_argument(
        "--spectrum", type=int, default=0, help="Hessian extremes at phi for this many tasks"
    )
    args = parser.parse_args()

    from fastmeta.presets import load_config
    from fastmeta.run.build import build_model, build_sources

    config = load_config("imaml-omniglot-5w1s")
    sources = build_sources(config, torch.device("cpu"))
    torch.manual_seed(config.seed)
    model = build_model(config, sources.input_shape)
    if args.run:
        from fastmeta.run.checkpoint import latest_checkpoint

        path = latest_checkpoint(args.run)
        state = torch.load(path[1] if isinstance(path, tuple) else path, weights_only=False)
        weights = {k.removeprefix("model."): v for k, v in state["algorithm"].items()}
        model.load_state_dict({k: v for k, v in weights.items() if k in model.state_dict()})
    model = model.double()
    full = sources.train.batch(args.batch_index)
    batch = type(full)(
        full.support_x[: args.tasks].double(), full.support_y[: args.tasks],
        full.query_x[: args.tasks].double(), full.query_y[: args.tasks],
    )  # fmt: skip
    theta, tasks = flat_tasks(model, batch)
    results = {}
    for name in args.protocols.split(","):
        p = PROTOCOLS[name]
        start = time.perf_counter()
        grads, stats = zip(*(meta_gradient(t, theta, p) for t in tasks), strict=True)
        reference = torch.stack(grads).mean(0)
        summary = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}
        summary["seconds"] = time.perf_counter() - start
        if args.compare:
            ours = fastmeta_meta_gradient(model, batch, p)
            summary["fastmeta_rel_diff"] = float((ours - reference).norm() / reference.norm())
        if args.spectrum:
            extremes = [
                extreme_eigenvalues(t, inner_solve(t, theta, p)) for t in tasks[: args.spectrum]
            ]
            summary["hessian_max"] = [round(e[0], 3) for e in extremes]
            summary["hessian_min"] = [round(e[1], 3) for e in extremes]
        summary["per_task_cg_residual"] = [round(s["cg_residual"], 3) for s in stats]
        results[name] = summary
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
