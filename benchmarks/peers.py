"""Every MAML implementation the benchmark compares, as one kind of function.

``method.build(model, config)`` returns ``step(batch)``: one meta-step's gradient, the gradient
of the mean over tasks of the query loss after ``config.steps`` inner SGD steps, accumulated
into ``model``'s ``.grad`` (set to None first). No optimizer step, so every method starts each
call from the same weights. Peers are written the way their own MAML examples are (one task at a
time, a backward per task); a peer that is not installed is skipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.workloads import MamlConfig
from fastmeta.algorithms import MAML
from fastmeta.tasks import TaskBatch

MetaStep = Callable[[TaskBatch], None]


@dataclass(frozen=True)
class Method:
    """A named implementation; ``build(model, ...)`` returns its meta-step; ``module`` is the
    package it needs (None: always available)."""

    name: str
    build: Callable[..., MetaStep]
    module: str | None = None
    cuda_only: bool = False

    def available(self, device: torch.device) -> bool:
        if self.cuda_only and device.type != "cuda":
            return False
        return self.module is None or importlib.util.find_spec(self.module) is not None


def fastmeta_step(
    strategy: str, chunk_size: int | None
) -> Callable[[nn.Module, MamlConfig], MetaStep]:
    """fastmeta's MAML as the trainer runs it: ``accumulate_gradients`` (a backward per chunk)."""

    def build(model: nn.Module, config: MamlConfig) -> MetaStep:
        maml = MAML(
            model, lr=config.inner_lr, steps=config.steps, first_order=config.first_order,
            strategy=strategy,
        )  # fmt: skip

        def step(batch: TaskBatch) -> None:
            model.zero_grad(set_to_none=True)
            maml.accumulate_gradients(batch, chunk_size)

        return step

    return build


def fastmeta_graphed_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    """fastmeta's MAML (vmap) with the meta-step captured once as a CUDA graph and replayed."""
    from fastmeta.train.cuda_graph import CapturedMetaStep

    maml = MAML(
        model, lr=config.inner_lr, steps=config.steps, first_order=config.first_order,
        strategy="vmap",
    )  # fmt: skip
    captured: list[CapturedMetaStep] = []

    def step(batch: TaskBatch) -> None:
        if not captured:
            captured.append(CapturedMetaStep(maml, batch))
        captured[0](batch)

    return step


def torch_func_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    """A plain per-task loop over ``torch.func.functional_call`` and ``torch.func.grad``."""
    params = dict(model.named_parameters())

    def support_loss(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(torch.func.functional_call(model, weights, (x,)), y)

    inner_grad = torch.func.grad(support_loss)

    def step(batch: TaskBatch) -> None:
        model.zero_grad(set_to_none=True)
        for t in range(batch.num_tasks):
            fast = params
            for _ in range(config.steps):
                at = {n: p.detach() for n, p in fast.items()} if config.first_order else fast
                grads = inner_grad(at, batch.support_x[t], batch.support_y[t])
                fast = {n: p - config.inner_lr * grads[n] for n, p in fast.items()}
            query = torch.func.functional_call(model, fast, (batch.query_x[t],))
            (F.cross_entropy(query, batch.query_y[t]) / batch.num_tasks).backward()

    return step


def learn2learn_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    """learn2learn's ``MAML`` wrapper: ``clone()``, ``adapt(loss)``, a backward per task."""
    import learn2learn as l2l

    maml = l2l.algorithms.MAML(model, lr=config.inner_lr, first_order=config.first_order)

    def step(batch: TaskBatch) -> None:
        model.zero_grad(set_to_none=True)
        for t in range(batch.num_tasks):
            learner = maml.clone()
            for _ in range(config.steps):
                learner.adapt(F.cross_entropy(learner(batch.support_x[t]), batch.support_y[t]))
            loss = F.cross_entropy(learner(batch.query_x[t]), batch.query_y[t])
            (loss / batch.num_tasks).backward()

    return step


def higher_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    """higher's ``innerloop_ctx`` with a differentiable SGD; first order detaches inner grads."""
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=config.inner_lr)
    callback = (lambda grads: [g.detach() for g in grads]) if config.first_order else None

    def step(batch: TaskBatch) -> None:
        model.zero_grad(set_to_none=True)
        for t in range(batch.num_tasks):
            context = higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False)
            with context as (fmodel, opt):
                for _ in range(config.steps):
                    loss = F.cross_entropy(fmodel(batch.support_x[t]), batch.support_y[t])
                    opt.step(loss, grad_callback=callback)
                loss = F.cross_entropy(fmodel(batch.query_x[t]), batch.query_y[t])
                (loss / batch.num_tasks).backward()

    return step


def torchopt_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    """TorchOpt: ``MetaSGD`` as in its MAML example (second order), its functional SGD with
    detached inner gradients for first order (``MetaSGD`` always differentiates its steps)."""
    import torchopt

    if config.first_order:
        return _torchopt_functional_step(model, config)
    inner_opt = torchopt.MetaSGD(model, lr=config.inner_lr)
    model_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
    opt_state = torchopt.extract_state_dict(inner_opt, by="reference")

    def step(batch: TaskBatch) -> None:
        model.zero_grad(set_to_none=True)
        for t in range(batch.num_tasks):
            for _ in range(config.steps):
                inner_opt.step(F.cross_entropy(model(batch.support_x[t]), batch.support_y[t]))
            loss = F.cross_entropy(model(batch.query_x[t]), batch.query_y[t])
            (loss / batch.num_tasks).backward()
            torchopt.recover_state_dict(model, model_state)
            torchopt.recover_state_dict(inner_opt, opt_state)

    return step


def _torchopt_functional_step(model: nn.Module, config: MamlConfig) -> MetaStep:
    import torchopt

    names = [n for n, _ in model.named_parameters()]
    initial = tuple(p for _, p in model.named_parameters())
    sgd = torchopt.sgd(config.inner_lr)

    def forward(weights: tuple[Tensor, ...], x: Tensor) -> Tensor:
        return torch.func.functional_call(model, dict(zip(names, weights, strict=True)), (x,))

    def step(batch: TaskBatch) -> None:
        model.zero_grad(set_to_none=True)
        for t in range(batch.num_tasks):
            fast, state = initial, sgd.init(initial)
            for _ in range(config.steps):
                loss = F.cross_entropy(forward(fast, batch.support_x[t]), batch.support_y[t])
                grads = torch.autograd.grad(loss, fast)
                updates, state = sgd.update(grads, state, inplace=False)
                fast = torchopt.apply_updates(fast, updates, inplace=False)
            loss = F.cross_entropy(forward(fast, batch.query_x[t]), batch.query_y[t])
            (loss / batch.num_tasks).backward()

    return step


LEARN2LEARN = "learn2learn"
METHODS: tuple[Method, ...] = (
    Method("fastmeta auto", fastmeta_step("auto", None)),
    Method("fastmeta loop", fastmeta_step("loop", None)),
    Method("fastmeta vmap", fastmeta_step("vmap", None)),
    Method("fastmeta vmap, chunks of 8", fastmeta_step("vmap", 8)),
    Method("fastmeta vmap, CUDA graph", fastmeta_graphed_step, cuda_only=True),
    Method("torch.func loop", torch_func_step),
    Method(LEARN2LEARN, learn2learn_step, "learn2learn"),
    Method("higher", higher_step, "higher"),
    Method("TorchOpt", torchopt_step, "torchopt"),
)
