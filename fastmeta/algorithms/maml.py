"""MAML and first-order MAML (Finn et al. 2017), batched over tasks, plus the object API.

Batched use (what the trainer does)::

    maml = MAML(model, lr=0.4, steps=1)
    out = maml(task_batch)            # MetaOutput; out.loss is the differentiable meta-loss
    out.loss.backward(); optimizer.step()

The familiar object API, built on the same engine (no module surgery)::

    learner = maml.clone()
    learner.adapt(loss_fn(learner(support_x), support_y))
    loss_fn(learner(query_x), query_y).backward()
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.functional.batched import Plan
from fastmeta.functional.inner import LearningRate, adapt, update
from fastmeta.functional.optimizers import SGD, InnerOptimizer
from fastmeta.functional.params import (
    NameFilter,
    Params,
    functional_forward,
    module_state,
    select_adaptable,
)
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fastmeta.run_config import AlgorithmConfig


class MAML(InnerLoopLearner):
    """Model-Agnostic Meta-Learning over any ``nn.Module``.

    Args:
        model: the network whose initial parameters are meta-learned.
        lr: inner learning rate: a float, a per-parameter dict, or one of those per step.
        steps: inner SGD steps in training.
        test_steps: inner steps in :meth:`evaluate` (default: ``steps``).
        first_order: ignore second derivatives (first-order MAML).
        adapt: which parameters the inner loop changes: names/prefixes (``["head"]`` for ANIL)
            or a predicate on names; default all trainable ones. Frozen parameters never adapt.
        loss_fn: ``loss_fn(predictions, targets)``; default cross-entropy for class labels and
            MSE for real targets.
        inner_loss_scale: multiplies the support loss the inner loop descends (MAML's reference
            code sums the cross-entropy over the N*K support examples and divides by K: that is
            ``inner_loss_scale=N`` here).
        strategy: ``"auto"``, ``"vmap"`` or ``"loop"`` over the tasks of a batch (same numbers).
        chunk_size: at most this many tasks in flight at once (``None``: the whole batch).
        inner_optimizer: the differentiable inner update rule (default plain SGD), e.g.
            :class:`~fastmeta.functional.optimizers.Adam`; the object API (:meth:`clone`) takes
            plain SGD steps only.
        checkpoint_inner_steps: keep only each inner step's parameters for the backward pass
            and recompute its activations there, so memory grows slowly with ``steps`` (second
            order). Tasks then run one by one (``strategy`` ``"auto"`` or ``"loop"``) with a
            backward per task unless ``accumulate_gradients`` is given a chunk size.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: LearningRate = 0.01,
        steps: int = 1,
        *,
        adapt: Iterable[str] | NameFilter | None = None,
        inner_optimizer: InnerOptimizer | None = None,
        checkpoint_inner_steps: bool = False,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        self.lr = lr
        self.adapt_filter = adapt
        self.inner_optimizer = inner_optimizer or SGD()
        if checkpoint_inner_steps and self.strategy == "vmap":
            raise ValueError(
                "checkpoint_inner_steps runs tasks one at a time (torch.func.vmap does not "
                "support checkpointing): use strategy='loop' or 'auto'"
            )
        self.checkpoint_inner_steps = checkpoint_inner_steps

    @property
    def first_order(self) -> bool:
        """Whether meta-steps ignore second derivatives (first-order MAML)."""
        return self._first_order

    @first_order.setter
    def first_order(self, value: bool) -> None:
        self._first_order = value

    def task_plan(self, batch: TaskBatch) -> Plan:
        """Checkpointed inner steps run one task at a time (vmap refuses checkpointing)."""
        if self.checkpoint_inner_steps:
            return Plan("loop", self.chunk_size)
        return super().task_plan(batch)

    def default_backward_chunk(self, batch: TaskBatch) -> int | None:
        """One task per backward when the inner steps are checkpointed (memory is the point)."""
        if self.checkpoint_inner_steps and self.chunk_size is None:
            return 1
        return super().default_backward_chunk(batch)

    def inner_lr(self) -> LearningRate:
        """The inner learning rate(s); subclasses with learned rates override this."""
        return self.lr

    def adaptable_names(self) -> list[str]:
        return select_adaptable(dict(self.model.named_parameters()), self.adapt_filter)

    def forward(self, batch: TaskBatch | Tensor, *args: Any, **kwargs: Any) -> Any:
        """Meta-loss of a :class:`TaskBatch`; a plain tensor is passed to the model unchanged."""
        if not isinstance(batch, TaskBatch):
            return self.model(batch, *args, **kwargs)
        return super().forward(batch)

    def adapt_task(
        self, params: Params, buffers: Params, sx: Tensor, sy: Tensor, *, steps: int,
        first_order: bool,
    ) -> Params:  # fmt: skip
        """The parameters adapted to one task's support set ``sx, sy`` (all of them, the
        adapted ones replaced)."""

        def forward(p: Params, x: Tensor) -> Tensor:
            out: Tensor = functional_forward(self.model, p, buffers, x)
            return out

        return adapt(
            forward, params, sx, sy, self.support_loss,
            steps=steps, lr=self.inner_lr(), adapt_names=self.adaptable_names(),
            first_order=first_order, optimizer=self.inner_optimizer,
            checkpoint_steps=self.checkpoint_inner_steps,
        )  # fmt: skip

    def run(self, batch: TaskBatch, *, steps: int, first_order: bool) -> MetaOutput:
        """Adapt every task of ``batch`` on its support set and score its query set."""
        params, buffers = module_state(self.model)

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            fast = self.adapt_task(params, buffers, sx, sy, steps=steps, first_order=first_order)
            predictions = functional_forward(self.model, fast, buffers, qx)
            return self.loss_fn(predictions, qy), predictions

        losses, predictions = self.per_task(task_fn, batch)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)

    def task_classifier(self, support_x: Tensor, support_y: Tensor) -> nn.Module:
        """A copy of the network holding the weights adapted to one support set (with the
        test-time inner steps), for export: ``module(x)`` gives the query logits."""
        network = copy.deepcopy(self.model).eval()
        params, buffers = module_state(network)
        with torch.no_grad():
            fast = self.adapt_task(
                params, buffers, support_x, support_y, steps=self.test_steps, first_order=True
            )
            for name, param in network.named_parameters():
                param.copy_(fast[name])
        return network

    def clone(self, first_order: bool | None = None) -> Learner:
        """A learner starting at the current parameters, differentiably linked to them."""
        if self.inner_optimizer != SGD():
            raise ValueError(
                "clone() learners take plain SGD steps; this MAML has inner_optimizer="
                f"{self.inner_optimizer!r}: use the batched forward(TaskBatch) instead"
            )
        params, buffers = module_state(self.model)
        return Learner(
            self.model,
            params,
            buffers,
            lr=self.inner_lr(),
            adapt_names=self.adaptable_names(),
            first_order=self.first_order if first_order is None else first_order,
        )


class Learner:
    """Fast weights of one task: ``learner(x)``, ``learner.adapt(loss)``, ``learner.clone()``.

    The parameters are a dictionary of tensors computed from the meta-parameters, so a loss of
    the adapted learner back-propagates into the :class:`MAML` module that cloned it. It behaves
    like a module where that is well defined: ``train()`` / ``eval()`` (its own mode, applied
    to the shared network for its calls; until set, the network's), ``to()``, ``state_dict()``,
    ``parameters()``.
    """

    def __init__(
        self,
        model: nn.Module,
        params: Params,
        buffers: Params,
        *,
        lr: LearningRate,
        adapt_names: list[str],
        first_order: bool,
        step: int = 0,
        training: bool | None = None,
    ) -> None:
        self.model = model
        self.params = dict(params)
        self.buffers = dict(buffers)
        self.lr = lr
        self.adapt_names = adapt_names
        self.first_order = first_order
        self.step = step
        self._training = training

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._in_own_mode():
            return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The network's output with this learner's tensors (BatchNorm never updates the
        shared running statistics in training mode)."""
        return functional_forward(self.model, self.params, self.buffers, *args, **kwargs)

    def adapt(self, loss: Tensor, first_order: bool | None = None) -> None:
        """One SGD step of the adaptable parameters on ``loss`` (computed from this learner)."""
        first_order = self.first_order if first_order is None else first_order
        self.take_step(self.gradients(loss, self.adapt_names, first_order))

    def gradients(
        self, loss: Tensor, names: list[str], first_order: bool
    ) -> dict[str, Tensor | None]:
        """The gradient of ``loss`` for each parameter in ``names`` (None where it is unused);
        refused when ``loss`` depends on none of them."""
        if not loss.requires_grad:
            raise ValueError(
                "adapt(loss): the loss does not require grad. Compute it from this learner's "
                "output, learner(x), with gradients enabled (not inside torch.no_grad())."
            )
        tensors = [self.params[n] for n in names]
        grads = torch.autograd.grad(loss, tensors, create_graph=not first_order, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError(
                "adapt(loss): the loss does not depend on any adaptable parameter of this learner. "
                "Compute it from learner(x) (the clone), not from the original model."
            )
        return dict(zip(names, grads, strict=True))

    def take_step(self, grads: Mapping[str, Tensor | None], lr: LearningRate | None = None) -> None:
        """One step of the inner update rule along ``grads`` with learning rate ``lr``
        (default the learner's); a parameter whose gradient is None stays as it is."""
        used = {n: g for n, g in grads.items() if g is not None}
        rate = self.lr if lr is None else lr
        stepped, _ = update({n: self.params[n] for n in used}, used, self.step, rate)
        self.params.update(stepped)
        self.step += 1

    def clone(self) -> Learner:
        """A copy that adapts independently from this learner's current parameters."""
        return Learner(
            self.model, self.params, self.buffers, lr=self.lr, adapt_names=self.adapt_names,
            first_order=self.first_order, step=self.step, training=self._training,
        )  # fmt: skip

    @property
    def training(self) -> bool:
        """Whether calls run the network in training mode."""
        return self.model.training if self._training is None else self._training

    def train(self, mode: bool = True) -> Learner:
        """Run this learner's calls in training mode (``mode=False``: evaluation mode)."""
        self._training = mode
        return self

    def eval(self) -> Learner:
        """Run this learner's calls in evaluation mode."""
        return self.train(False)

    def to(self, *args: Any, **kwargs: Any) -> Learner:
        """Move (or cast) the learner's tensors as ``Tensor.to`` does; differentiably, so the
        meta-gradient still reaches the original parameters."""
        self.params = {n: p.to(*args, **kwargs) for n, p in self.params.items()}
        self.buffers = {n: b.to(*args, **kwargs) for n, b in self.buffers.items()}
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """The network's state dictionary with this learner's tensors, detached."""
        current = {id(t): self.params.get(n, self.buffers.get(n)) for n, t in _tensors(self.model)}
        return {
            name: cast(Tensor, current.get(id(tensor), tensor)).detach()
            for name, tensor in self.model.state_dict(keep_vars=True).items()
        }

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return iter(self.params.items())

    def parameters(self) -> Iterator[Tensor]:
        return iter(self.params.values())

    @contextmanager
    def _in_own_mode(self) -> Iterator[None]:
        """The network in this learner's train/eval mode for the block, then as it was."""
        modules = [] if self._training is None else list(self.model.modules())
        if all(m.training == self._training for m in modules):
            yield
            return
        modes = [m.training for m in modules]
        self.model.train(cast(bool, self._training))
        try:
            yield
        finally:
            for module, mode in zip(modules, modes, strict=True):
                module.training = mode


def _tensors(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """The network's parameters and buffers by name (tied ones once)."""
    yield from model.named_parameters()
    yield from model.named_buffers()


def maml_arguments(settings: AlgorithmConfig) -> dict[str, Any]:
    """The :class:`MAML` keyword arguments of an ``algorithm`` section (shared by variants)."""
    a = settings
    return dict(
        lr=a.inner_lr, steps=a.inner_steps, test_steps=a.test_inner_steps,
        first_order=a.first_order, adapt=a.adapt, inner_loss_scale=a.inner_loss_scale,
        checkpoint_inner_steps=a.checkpoint_inner_steps,
        strategy=a.strategy, chunk_size=a.chunk_size,
    )  # fmt: skip


def build_maml(
    settings: AlgorithmConfig, options: None, model: nn.Module, input_shape: tuple[int, ...]
) -> MAML:
    """MAML from a run's ``algorithm`` section (``first_order`` selects first-order MAML)."""
    return MAML(model, **maml_arguments(settings))
