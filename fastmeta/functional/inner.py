"""The inner loop: gradient steps on a support loss, as a pure, vmappable function.

Every method of the gradient family adapts through :func:`descend` (or its front-end
:func:`adapt`): MAML and its variants adapt network weights, CAVIA a context vector, iMAML
solves a proximal problem, Reptile runs inner Adam on support mini-batches, MAML++ scores the
queries after every step with per-step rates and BatchNorm parameters, and the object API's
``Learner.adapt`` takes one step at a time through :func:`update`. The hooks:

- ``loss(fast, step)``: the support loss of the adapted tensors at inner step ``step`` (so a
  step can read its own mini-batch or per-step parameters); given a list ``aux`` it returns
  ``(loss, aux)`` and the aux of every step is collected there;
- ``lr``: a scalar, a per-parameter mapping (Meta-SGD's tensors), or one of those per step;
- ``optimizer``: the differentiable update rule (plain SGD by default; its state is threaded
  through the steps, so it can be learned through);
- ``proximal``: adds ``strength * (fast - anchor)`` to the gradient (iMAML's regulariser);
- ``after_step(step, fast)``: called after each update (MAML++'s multi-step query loss);
- ``checkpoint_steps``: recompute each step's activations in the backward pass.

Second order (the default) keeps the steps differentiable, so a query loss of the result
back-propagates into the initial tensors and into learnable rates; ``first_order`` treats the
inner gradients as constants; under ``torch.no_grad()`` no graph is kept at all (iMAML's and
Reptile's inner loops). Gradients are taken with ``torch.func.grad`` under ``vmap`` and with
plain autograd when tasks run one at a time (the same numbers, less overhead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from fastmeta.functional.optimizers import SGD, InnerOptimizer, State
from fastmeta.functional.params import Params, one_task_at_a_time, tasks_run_one_by_one

Forward = Callable[[Params, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
StepLoss = Callable[[Params, int], Any]
"""``loss(fast, step)``: a scalar tensor, or ``(scalar, aux)`` when :func:`descend` collects aux."""
StepLR = float | Tensor | Mapping[str, Tensor | float]
LearningRate = StepLR | Sequence[StepLR]
AfterStep = Callable[[int, Params], None]


@dataclass(frozen=True)
class Proximal:
    """A pull towards ``anchor``: the inner objective gains ``strength / 2 ||fast - anchor||^2``."""

    strength: float
    anchor: Params


def step_lr(lr: LearningRate, step: int, name: str) -> Tensor | float:
    """The learning rate of parameter ``name`` at inner step ``step``.

    ``lr`` is a scalar, a per-parameter mapping (Meta-SGD style tensors shaped like the
    parameter, or scalars), or a sequence with one of those per step.
    """
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        if step >= len(lr):
            raise ValueError(f"per-step learning rates cover {len(lr)} steps; step {step} asked")
        lr = lr[step]
    if isinstance(lr, Mapping):
        if name not in lr:
            raise KeyError(f"no inner learning rate for parameter {name!r}; given {sorted(lr)}")
        return lr[name]
    return lr


def update(
    fast: Params,
    grads: Params,
    step: int,
    lr: LearningRate,
    optimizer: InnerOptimizer | None = None,
    state: State | None = None,
) -> tuple[Params, State]:
    """One update of ``fast`` by ``grads`` at inner step ``step``: the rule every inner step
    of the engine applies (default plain SGD). Returns the new tensors and optimizer state."""
    optimizer = optimizer or SGD()
    state = optimizer.init(fast) if state is None else state
    rates = {n: step_lr(lr, step, n) for n in fast}
    return optimizer.step(fast, grads, state, rates, step)


def descend(
    loss: StepLoss,
    fast: Params,
    *,
    steps: int,
    lr: LearningRate,
    first_order: bool = False,
    optimizer: InnerOptimizer | None = None,
    proximal: Proximal | None = None,
    after_step: AfterStep | None = None,
    checkpoint_steps: bool = False,
    aux: list[Any] | None = None,
) -> Params:
    """``steps`` updates of ``fast`` down ``loss(fast, step)``; a new dictionary (see the module
    docstring for the hooks). Given a list ``aux``, ``loss`` returns ``(loss, aux)`` and the aux
    of every step is appended to it."""
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    checkpoint_steps = checkpoint_steps and not first_order  # no graph between steps to save
    if checkpoint_steps and (aux is not None or not tasks_run_one_by_one()):
        raise ValueError(
            "checkpointed inner steps run one task at a time and return nothing but the "
            "tensors: use strategy='loop' (torch.func.vmap and torch.func.grad do not support "
            "the saved-tensor hooks checkpointing needs)"
        )
    optimizer = optimizer or SGD()
    state = optimizer.init(fast)
    # a graph through the steps only when gradients are on and second order is asked for
    create_graph = torch.is_grad_enabled() and not first_order
    grad_fn = _gradient(loss, aux is not None, create_graph)

    def inner_step(step: int, fast: Params, state: State) -> tuple[Params, State]:
        if first_order:  # constants, also with respect to what the loss closes over
            grads, extra = grad_fn({n: p.detach() for n, p in fast.items()}, step)
            grads = {n: g.detach() for n, g in grads.items()}
        else:
            grads, extra = grad_fn(fast, step)
        if aux is not None:
            aux.append(extra)
        if proximal is not None:
            grads = {
                n: g + proximal.strength * (fast[n] - proximal.anchor[n]) for n, g in grads.items()
            }
        return update(fast, grads, step, lr, optimizer, state)

    for step in range(steps):
        if checkpoint_steps:
            fast, state = _checkpointed(partial(inner_step, step), fast, state)
        else:
            fast, state = inner_step(step, fast, state)
        if after_step is not None:
            after_step(step, fast)
    return fast


def adapt(
    forward: Forward,
    params: Params,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
    *,
    steps: int,
    lr: LearningRate,
    adapt_names: Sequence[str],
    first_order: bool = False,
    optimizer: InnerOptimizer | None = None,
    checkpoint_steps: bool = False,
) -> Params:
    """Run ``steps`` steps of ``optimizer`` (default plain SGD) on
    ``loss_fn(forward(params, inputs), targets)``.

    Only the parameters named in ``adapt_names`` change; the others are used as they are.
    Returns a new dictionary (the input is not modified). ``checkpoint_steps`` keeps only each
    step's parameters for the backward pass and recomputes the step's activations there
    (second order, one task at a time only: ``torch.func`` transforms refuse checkpointing).
    """
    fixed = {n: p for n, p in params.items() if n not in adapt_names}

    def support_loss(adapted: Params, step: int) -> Tensor:
        return loss_fn(forward({**fixed, **adapted}, inputs), targets)

    fast = descend(
        support_loss, {n: params[n] for n in adapt_names}, steps=steps, lr=lr,
        first_order=first_order, optimizer=optimizer, checkpoint_steps=checkpoint_steps,
    )  # fmt: skip
    return {**fixed, **fast}


GradFn = Callable[[Params, int], tuple[Params, Any]]


def _gradient(loss: StepLoss, has_aux: bool, create_graph: bool) -> GradFn:
    """``(grads, aux)`` of ``loss(fast, step)`` with respect to ``fast``: plain autograd one
    task at a time, ``torch.func.grad`` under ``vmap``."""
    if not tasks_run_one_by_one():
        transform = torch.func.grad(loss, has_aux=True) if has_aux else torch.func.grad(loss)

        def func_grad(fast: Params, step: int) -> tuple[Params, Any]:
            out = transform(fast, step)
            return out if has_aux else (out, None)

        return func_grad
    return partial(_autograd_grad, loss, has_aux, create_graph)


def _autograd_grad(
    loss: StepLoss, has_aux: bool, create_graph: bool, fast: Params, step: int
) -> tuple[Params, Any]:
    """``torch.func.grad`` through plain autograd, for code that is not under ``vmap``.

    Same values and the same graph (second order keeps ``create_graph``, also through what
    the loss closes over, e.g. CAVIA's network), without the transform's per-operation
    wrapping, which dominates tiny support-set steps on a CPU. Like ``torch.func.grad`` it
    ignores an enclosing ``torch.no_grad()``.
    """
    with torch.enable_grad():
        leaves = {n: p if p.requires_grad else p.detach().requires_grad_() for n, p in fast.items()}
        out = loss(leaves, step)
        value, aux = out if has_aux else (out, None)
        grads = torch.autograd.grad(
            value, list(leaves.values()), create_graph=create_graph, allow_unused=True,
            materialize_grads=True,
        )  # fmt: skip
    return dict(zip(leaves, grads, strict=True)), aux


def _checkpointed(
    inner_step: Callable[[Params, State], tuple[Params, State]], fast: Params, state: State
) -> tuple[Params, State]:
    """``inner_step(fast, state)`` under non-reentrant activation checkpointing (which takes
    and returns flat tensors; the optimizer state keeps its keys from step to step)."""
    names = list(fast)
    slots = [(key, name) for key, part in state.items() for name in part]

    def flatten(fast: Params, state: State) -> list[Tensor]:
        return [fast[n] for n in names] + [state[key][name] for key, name in slots]

    def unflatten(flat: Sequence[Tensor]) -> tuple[Params, State]:
        rebuilt: State = {key: {} for key in state}
        for (key, name), tensor in zip(slots, flat[len(names) :], strict=True):
            rebuilt[key][name] = tensor
        return dict(zip(names, flat[: len(names)], strict=True)), rebuilt

    def flat_step(*flat: Tensor) -> list[Tensor]:
        with one_task_at_a_time():  # also when the backward pass recomputes it
            return flatten(*inner_step(*unflatten(flat)))

    return unflatten(checkpoint(flat_step, *flatten(fast, state), use_reentrant=False))
