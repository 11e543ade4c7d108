"""learn2learn's ``MAML`` and ``MetaSGD`` wrappers over fastmeta's MAML and its object API.

``MAML(model, lr, first_order=False, allow_unused=None, allow_nograd=False)``: the third
positional argument is ``first_order``, as in learn2learn (fastmeta's own ``MAML`` takes
``steps`` there). ``clone()`` gives a :class:`MAMLLearner`, fastmeta's
:class:`~fastmeta.algorithms.maml.Learner` with learn2learn's checks and module-like surface;
``maml(task_batch)`` still runs fastmeta's batched meta-loss, the fast path to migrate to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fastmeta.algorithms.maml import MAML as BatchedMAML
from fastmeta.algorithms.maml import Learner
from fastmeta.compat.learn2learn.utils import module_view, update_module
from fastmeta.functional.inner import LearningRate
from fastmeta.functional.params import module_state
from fastmeta.tasks import TaskBatch


class MAMLLearner(Learner):
    """A clone of a learn2learn-style wrapper: ``learner(x)``, ``adapt``, ``clone``, ``module``.

    Unlike fastmeta's own learner it follows learn2learn to the letter: every parameter is
    adapted, a frozen one (``requires_grad=False``) is an error unless ``allow_nograd``, one the
    loss does not use is an error unless ``allow_unused``, and in training mode BatchNorm
    updates the wrapped network's running statistics, which learn2learn's clones share. It
    computes through a structural copy of the network holding its tensors, so networks with
    tied weights or a submodule registered twice are handled without touching the original.
    """

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        *,
        lr: LearningRate,
        first_order: bool,
        allow_unused: bool,
        allow_nograd: bool,
        step: int = 0,
        training: bool | None = None,
    ) -> None:
        super().__init__(
            model, params, buffers, lr=lr, adapt_names=list(params), first_order=first_order,
            step=step, training=training,
        )  # fmt: skip
        self.allow_unused = allow_unused
        self.allow_nograd = allow_nograd

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's forward with this learner's tensors in place of its own
        (computed by :attr:`module`, so the wrapped network itself is never changed)."""
        return self.module(*args, **kwargs)

    @property
    def module(self) -> nn.Module:
        """The wrapped network as a module holding this learner's tensors, in the learner's
        train/eval mode (a fresh view on every access; its submodules compute with the
        adapted weights)."""
        current: dict[Tensor, Tensor] = {}
        current.update((t, self.params[n]) for n, t in self.model.named_parameters())
        current.update((t, self.buffers[n]) for n, t in self.model.named_buffers())
        view = module_view(self.model, current.__getitem__, current.__getitem__)
        return view if self._training is None else view.train(self._training)

    def adapt(
        self,
        loss: Tensor,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> None:
        """One SGD step of every parameter on ``loss``; the flags default to the learner's."""
        first_order = self.first_order if first_order is None else first_order
        allow_unused = self.allow_unused if allow_unused is None else allow_unused
        allow_nograd = self.allow_nograd if allow_nograd is None else allow_nograd
        frozen = [n for n, p in self.params.items() if not p.requires_grad]
        if frozen and not allow_nograd:
            raise ValueError(
                f"adapt(loss): parameter(s) {frozen} do not require grad; pass "
                "allow_nograd=True (to the wrapper, clone() or adapt()) to leave them unadapted"
            )
        names = [n for n in self.params if n not in frozen]
        grads = self.gradients(loss, names, first_order)
        unused = [n for n, g in grads.items() if g is None]
        if unused and not allow_unused:
            raise ValueError(
                f"adapt(loss): the loss does not use parameter(s) {unused}; pass "
                "allow_unused=True (to the wrapper, clone() or adapt()) to leave them unadapted"
            )
        self.take_step(grads)

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> MAMLLearner:
        """A copy that adapts independently from this learner's current tensors."""
        return type(self)(
            self.model, self.params, self.buffers, lr=self.lr,
            first_order=self.first_order if first_order is None else first_order,
            allow_unused=self.allow_unused if allow_unused is None else allow_unused,
            allow_nograd=self.allow_nograd if allow_nograd is None else allow_nograd,
            step=self.step, training=self._training,
        )  # fmt: skip


class MetaSGDLearner(MAMLLearner):
    """A clone of :class:`MetaSGD`: its learning rates are the wrapper's, one per parameter."""

    @property
    def lrs(self) -> list[Tensor]:
        """The learning rate of each parameter, in ``parameters()`` order."""
        rates: dict[str, Tensor] = self.lr  # type: ignore[assignment]  # set by MetaSGD.clone
        return [rates[name] for name in self.params]


class MAML(BatchedMAML):
    """learn2learn's MAML wrapper (Finn et al. 2017): ``clone()`` a learner per task.

    Args:
        model: the module to wrap (``maml.module``).
        lr: the fast-adaptation learning rate.
        first_order: ignore second derivatives (first-order MAML).
        allow_unused: allow parameters the loss does not use (default: ``allow_nograd``).
        allow_nograd: allow parameters with ``requires_grad=False`` (they are not adapted).

    ``maml(x)`` runs the model; ``maml(task_batch)`` (a :class:`~fastmeta.tasks.TaskBatch`) is
    fastmeta's batched meta-loss with one inner step of this ``lr``.
    """

    learner_type: type[MAMLLearner] = MAMLLearner

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        first_order: bool = False,
        allow_unused: bool | None = None,
        allow_nograd: bool = False,
    ) -> None:
        super().__init__(model, lr=lr, steps=1, first_order=first_order)
        self.allow_nograd = allow_nograd
        self.allow_unused = allow_nograd if allow_unused is None else allow_unused

    @property
    def module(self) -> nn.Module:
        """The wrapped model (its ``state_dict`` keys start with ``model.`` here)."""
        return self.model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's output; a lone TaskBatch gives fastmeta's batched meta-loss."""
        if len(args) == 1 and not kwargs and isinstance(args[0], TaskBatch):
            return super().forward(args[0])
        return self.model(*args, **kwargs)

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> MAMLLearner:
        """A learner starting at the current parameters, differentiably linked to them."""
        params, buffers = module_state(self.model)
        return self.learner_type(
            self.model, params, buffers, lr=self.inner_lr(),
            first_order=self.first_order if first_order is None else first_order,
            allow_unused=self.allow_unused if allow_unused is None else allow_unused,
            allow_nograd=self.allow_nograd if allow_nograd is None else allow_nograd,
        )  # fmt: skip

    def adapt(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Refused: adapting the wrapper itself would replace its meta-parameters."""
        raise TypeError(
            f"{type(self).__name__}.adapt() would overwrite the meta-parameters; adapt a clone "
            "instead: learner = maml.clone(); learner.adapt(loss)"
        )


class MetaSGD(MAML):
    """learn2learn's Meta-SGD wrapper (Li et al. 2017): a learned learning rate per weight.

    Args:
        model: the module to wrap.
        lr: the initial value of every learned rate.
        first_order: ignore second derivatives.
        lrs: the rates themselves (one tensor per parameter, shaped like it), instead of ``lr``.
    """

    learner_type = MetaSGDLearner

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1.0,
        first_order: bool = False,
        lrs: nn.ParameterList | Sequence[Tensor] | None = None,
    ) -> None:
        super().__init__(model, lr=lr, first_order=first_order)
        if lrs is None:
            lrs = nn.ParameterList(
                nn.Parameter(torch.ones_like(p) * lr) for p in model.parameters()
            )
        self.lrs = lrs

    def inner_lr(self) -> LearningRate:
        """The learned rates by parameter name."""
        names = [name for name, _ in self.model.named_parameters()]
        if len(self.lrs) != len(names):
            raise ValueError(
                f"MetaSGD has {len(self.lrs)} learning rates for {len(names)} parameters; pass "
                "lrs with one tensor per model.parameters()"
            )
        return dict(zip(names, self.lrs, strict=True))


def maml_update(
    model: nn.Module | MAMLLearner, lr: float, grads: Sequence[Tensor | None] | None = None
) -> nn.Module | MAMLLearner:
    """``p <- p - lr * g`` for each parameter and gradient of a learner (or of a cloned module,
    as learn2learn's ``maml_update``); None gradients leave their parameter. Returns ``model``."""
    return meta_sgd_update(model, None if grads is None else [lr] * len(grads), grads)


def meta_sgd_update(
    model: nn.Module | MAMLLearner,
    lrs: Sequence[float | Tensor] | None = None,
    grads: Sequence[Tensor | None] | None = None,
) -> nn.Module | MAMLLearner:
    """``p <- p - lr_p * g_p`` with one learning rate per parameter; see :func:`maml_update`."""
    if grads is None or lrs is None:
        if isinstance(model, MAMLLearner):
            raise ValueError("updating a learner needs its gradients and learning rates")
        return update_module(model)  # the tensors' ``update`` attributes, as learn2learn does
    names = [name for name, _ in model.named_parameters()]
    if not len(names) == len(grads) == len(lrs):
        raise ValueError(
            f"{len(grads)} gradients and {len(lrs)} learning rates for {len(names)} parameters; "
            "pass one each, in parameters() order"
        )
    if isinstance(model, MAMLLearner):
        model.take_step(dict(zip(names, grads, strict=True)), dict(zip(names, lrs, strict=True)))
        return model
    updates = [None if g is None else -lr * g for lr, g in zip(lrs, grads, strict=True)]
    return update_module(model, updates)
