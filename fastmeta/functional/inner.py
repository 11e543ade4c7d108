"""Inner-loop adaptation as a pure, vmappable function of a parameter dictionary.

``adapt`` takes k gradient steps on a support set and returns the adapted ("fast") parameters.
Second order (the default) keeps the steps differentiable, so a query loss of the result
back-propagates into the initial parameters and into learnable learning rates; first order
treats the inner gradients as constants (first-order MAML). Gradients are taken with
``torch.func.grad``, which composes with ``vmap`` over tasks and with ordinary autograd outside,
or, when tasks run one at a time, with plain autograd (the same numbers, less overhead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from fastmeta.functional.optimizers import SGD, InnerOptimizer, State
from fastmeta.functional.params import Params, one_task_at_a_time, tasks_run_one_by_one

Forward = Callable[[Params, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
StepLR = float | Tensor | Mapping[str, Tensor | float]
LearningRate = StepLR | Sequence[StepLR]


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
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    checkpoint_steps = checkpoint_steps and not first_order  # no graph between steps to save
    if checkpoint_steps and not tasks_run_one_by_one():
        raise ValueError(
            "checkpointed inner steps run one task at a time: use strategy='loop' "
            "(torch.func.vmap and torch.func.grad do not support the saved-tensor hooks "
            "checkpointing needs)"
        )
    fixed = {n: p for n, p in params.items() if n not in adapt_names}
    fast = {n: params[n] for n in adapt_names}

    def support_loss(adapted: Params) -> Tensor:
        return loss_fn(forward({**fixed, **adapted}, inputs), targets)

    optimizer = optimizer or SGD()
    state = optimizer.init(fast)
    grad_fn = (
        _autograd_grad(support_loss) if tasks_run_one_by_one() else torch.func.grad(support_loss)
    )

    def inner_step(step: int, fast: Params, state: State) -> tuple[Params, State]:
        if first_order:  # constants, also with respect to the parameters that do not adapt
            grads = grad_fn({n: p.detach() for n, p in fast.items()})
            grads = {n: g.detach() for n, g in grads.items()}
        else:
            grads = grad_fn(fast)
        rates = {n: step_lr(lr, step, n) for n in fast}
        return optimizer.step(fast, grads, state, rates, step)

    for step in range(steps):
        if checkpoint_steps:
            fast, state = _checkpointed(partial(inner_step, step), fast, state)
        else:
            fast, state = inner_step(step, fast, state)
    return {**fixed, **fast}


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


def _autograd_grad(loss_fn: Callable[[Params], Tensor]) -> Callable[[Params], Params]:
    """``torch.func.grad(loss_fn)`` through plain autograd, for code that is not under ``vmap``.

    Same values and the same graph (second order keeps ``create_graph``), without the
    transform's per-operation wrapping, which dominates tiny support-set steps on a CPU.
    Like ``torch.func.grad`` it ignores an enclosing ``torch.no_grad()``.
    """

    def grad_fn(params: Params) -> Params:
        create_graph = torch.is_grad_enabled() and any(p.requires_grad for p in params.values())
        with torch.enable_grad():
            leaves = {
                n: p if p.requires_grad else p.detach().requires_grad_() for n, p in params.items()
            }
            grads = torch.autograd.grad(
                loss_fn(leaves), list(leaves.values()), create_graph=create_graph,
                allow_unused=True, materialize_grads=True,
            )  # fmt: skip
        return dict(zip(leaves, grads, strict=True))

    return grad_fn
