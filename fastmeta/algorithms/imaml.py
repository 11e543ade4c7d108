"""iMAML: implicit-gradient MAML (Rajeswaran et al. 2019), batched over tasks.

Each task solves the proximal problem ``min_phi L_support(phi) + lambda/2 ||phi - theta||^2`` by
``steps`` gradient steps from ``theta``, with no graph kept. At the solution the Jacobian
``d phi / d theta`` is ``(I + H / lambda)^-1`` (``H`` the support-loss Hessian at ``phi``), so the
meta-gradient of the query loss is ``(I + H / lambda)^-1 g``, ``g`` its gradient at ``phi``:
conjugate gradient on Hessian-vector products solves for it. Memory therefore does not grow
with the number of inner steps. The trainer still only calls ``loss.backward()``: the returned
loss has the query loss as its value and that implicit gradient as its gradient.

The authors' Omniglot code (``aravindr93/imaml_dev``) computes something else, which the options
select: plain steps on the support loss then one step on the proximal term alone
(``proximal_steps=False``), the damped system ``(1 + cg_damping) I + H / (lambda +
hessian_damping)``, and plain steps at test time (``test_regularization=0``). The damping keeps
the system positive-definite where ``H`` has eigenvalues below ``-lambda`` (a network far from a
minimum of a 5-image loss), where undamped conjugate gradient does not solve it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.algorithms.options import IMAMLOptions
from fastmeta.functional.conjugate_gradient import (
    conjugate_gradient,
    dot,
    hessian_vector_product,
)
from fastmeta.functional.inner import Proximal, descend
from fastmeta.functional.params import Params, functional_forward, module_state
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fastmeta.run_config import AlgorithmConfig


class IMAML(InnerLoopLearner):
    """Implicit MAML over any ``nn.Module``; every trainable parameter adapts.

    Args:
        model: the network whose initial parameters ``theta`` are meta-learned.
        lr: step size of the inner gradient descent on the proximal objective.
        steps: inner steps in training.
        test_steps: inner steps in :meth:`evaluate` (default: ``steps``).
        regularization: ``lambda``, the strength of the pull towards ``theta``.
        cg_steps: conjugate-gradient iterations for the implicit meta-gradient.
        proximal_steps: every inner step descends the proximal objective (the paper); false:
            the steps descend the support loss and one last step the proximal term alone.
        cg_damping: added to the identity of the conjugate-gradient system.
        hessian_damping: added to ``lambda`` where it divides the Hessian.
        test_regularization: ``lambda`` of :meth:`evaluate` (0: plain steps; default
            ``regularization``).
        loss_fn: ``loss_fn(predictions, targets)``; default cross-entropy / MSE.
        inner_loss_scale: multiplies the support loss (see :class:`~fastmeta.algorithms.MAML`).
        strategy, chunk_size: how tasks of a batch run (see :func:`map_tasks`).
    """

    min_steps = 1
    unused_settings = ("first_order",)  # the implicit gradient is the method

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.1,
        steps: int = 16,
        *,
        regularization: float = 2.0,
        cg_steps: int = 5,
        proximal_steps: bool = True,
        cg_damping: float = 0.0,
        hessian_damping: float = 0.0,
        test_regularization: float | None = None,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        if regularization <= 0:
            raise ValueError(f"regularization (lambda) must be > 0, got {regularization}")
        if cg_steps < 1:
            raise ValueError(f"cg_steps must be >= 1, got {cg_steps}")
        if min(cg_damping, hessian_damping, test_regularization or 0.0) < 0:
            raise ValueError(
                "cg_damping, hessian_damping and test_regularization must be >= 0, got "
                f"{cg_damping}, {hessian_damping}, {test_regularization}"
            )
        self.lr = lr
        self.regularization = regularization
        self.cg_steps = cg_steps
        self.proximal_steps = proximal_steps
        self.cg_damping = cg_damping
        self.hessian_damping = hessian_damping
        self.test_regularization = (
            regularization if test_regularization is None else test_regularization
        )

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Solve every task's proximal problem and score its query set; with ``first_order``
        no meta-gradient is formed (evaluation)."""
        params, buffers = module_state(self.model)
        theta = {n: p for n, p in params.items() if p.requires_grad}
        frozen = {n: p for n, p in params.items() if not p.requires_grad}

        def forward(p: Params, x: Tensor) -> Tensor:
            out: Tensor = functional_forward(self.model, {**frozen, **p}, buffers, x)
            return out

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            def support_loss(p: Params) -> Tensor:
                return self.support_loss(forward(p, sx), sy)

            def query_loss(p: Params) -> tuple[Tensor, Tensor]:
                predictions = forward(p, qx)
                return self.loss_fn(predictions, qy), predictions

            anchor = {n: p.detach() for n, p in theta.items()}
            strength = self.test_regularization if first_order else self.regularization
            phi = proximal_descent(
                support_loss, anchor, strength, self.lr, steps, every_step=self.proximal_steps
            )
            if first_order:
                return query_loss(phi)
            grads, (loss, predictions) = torch.func.grad_and_value(query_loss, has_aux=True)(phi)
            meta_grad = implicit_meta_gradient(
                support_loss, phi, grads, self.regularization, self.cg_steps,
                cg_damping=self.cg_damping, hessian_damping=self.hessian_damping,
            )  # fmt: skip
            # value: the query loss; gradient with respect to theta: the implicit meta-gradient
            surrogate = dot(theta, meta_grad)
            return loss.detach() + surrogate - surrogate.detach(), predictions.detach()

        losses, predictions = self.per_task(task_fn, batch)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)


def proximal_descent(
    support_loss: Callable[[Params], Tensor],
    theta: Params,
    regularization: float,
    lr: float,
    steps: int,
    *,
    every_step: bool = True,
) -> Params:
    """``steps`` gradient steps on ``support_loss(phi) + regularization/2 ||phi - theta||^2``
    from ``phi = theta``; no graph is kept (``theta`` is treated as a constant). Without
    ``every_step`` the steps descend ``support_loss`` alone and one last step the proximal term
    alone, ``phi <- phi - lr * regularization * (phi - theta)`` (the authors' code)."""
    pull = Proximal(regularization, theta)
    with torch.no_grad():
        phi = descend(
            lambda phi, step: support_loss(phi), dict(theta), steps=steps, lr=lr,
            proximal=pull if every_step else None,
        )  # fmt: skip
        if every_step:
            return phi
        return {n: p - lr * regularization * (p - theta[n]) for n, p in phi.items()}


def implicit_meta_gradient(
    support_loss: Callable[[Params], Tensor],
    phi: Params,
    query_grad: Params,
    regularization: float,
    cg_steps: int,
    *,
    cg_damping: float = 0.0,
    hessian_damping: float = 0.0,
) -> Params:
    """``((1 + cg_damping) I + H / (regularization + hessian_damping))^-1 query_grad`` by
    conjugate gradient, ``H`` the Hessian of ``support_loss`` at ``phi`` (undamped: the
    paper's ``(I + H / lambda)^-1``); the result carries no graph."""
    hessian = hessian_vector_product(support_loss, phi)
    identity, scale = 1.0 + cg_damping, regularization + hessian_damping

    def matvec(v: Params) -> Params:
        hv = hessian(v)
        return {n: identity * v[n] + hv[n] / scale for n in v}

    solution = conjugate_gradient(matvec, query_grad, cg_steps)
    return {n: v.detach() for n, v in solution.items()}


def build_imaml(
    settings: AlgorithmConfig, options: IMAMLOptions, model: nn.Module, input_shape: tuple[int, ...]
) -> IMAML:
    """iMAML from a run's ``algorithm`` section; the inner loop uses ``inner_lr`` and
    ``inner_steps``."""
    a = settings
    return IMAML(
        model, lr=a.inner_lr, steps=a.inner_steps, test_steps=a.test_inner_steps,
        regularization=options.regularization, cg_steps=options.cg_steps,
        proximal_steps=options.proximal_steps, cg_damping=options.cg_damping,
        hessian_damping=options.hessian_damping, test_regularization=options.test_regularization,
        inner_loss_scale=a.inner_loss_scale, strategy=a.strategy, chunk_size=a.chunk_size,
    )  # fmt: skip
