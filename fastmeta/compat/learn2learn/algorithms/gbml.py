"""learn2learn's ``GBML``: gradient-based meta-learning with a learned update transform.

The inner step is ``p <- p - lr * T_p(grad_p)``, with one learnable transform ``T_p`` per
parameter (a :class:`~fastmeta.compat.learn2learn.optim.ParameterUpdate`): a ``Scale`` gives
Meta-SGD, a Kronecker-factored module KFO (Arnold et al. 2019), Meta-Curvature (Park & Oliva
2019). With ``adapt_transform`` the transforms are adapted too, from the second step on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from fastmeta.compat.learn2learn.algorithms.maml import MAMLLearner
from fastmeta.compat.learn2learn.optim.parameter_update import ParameterUpdate
from fastmeta.compat.learn2learn.utils import module_view
from fastmeta.functional.inner import update
from fastmeta.functional.params import module_state

Transform = Callable[[Tensor], nn.Module | None]


class GBMLLearner(MAMLLearner):
    """A clone of :class:`GBML`: fast weights and fast transform parameters."""

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        *,
        compute_update: ParameterUpdate,
        update_params: dict[str, Tensor],
        adapt_transform: bool,
        params_updated: bool = False,
        **settings: Any,
    ) -> None:
        super().__init__(model, params, buffers, **settings)
        self._compute_update = compute_update
        self.update_params = dict(update_params)
        self.adapt_transform = adapt_transform
        self._params_updated = params_updated

    @property
    def compute_update(self) -> ParameterUpdate:
        """The update transforms holding this learner's (possibly adapted) parameters."""
        named = self._compute_update.named_parameters()
        current: dict[Tensor, Tensor] = {p: self.update_params[n] for n, p in named}
        return module_view(self._compute_update, current.__getitem__, lambda b: b)

    def adapt(  # type: ignore[override]  # learn2learn's GBML takes allow_nograd second
        self,
        loss: Tensor,
        first_order: bool | None = None,
        allow_nograd: bool | None = None,
        allow_unused: bool | None = None,
    ) -> None:
        """One transformed gradient step on ``loss``; the flags default to the learner's."""
        first_order = self.first_order if first_order is None else first_order
        allow_unused = self.allow_unused if allow_unused is None else allow_unused
        allow_nograd = self.allow_nograd if allow_nograd is None else allow_nograd
        second_order = not first_order
        if self.adapt_transform and self._params_updated:
            names = list(self.update_params)
            grads = torch.autograd.grad(
                loss, [self.update_params[n] for n in names], create_graph=second_order,
                retain_graph=True, allow_unused=True,
            )  # fmt: skip
            used = {n: g for n, g in zip(names, grads, strict=True) if g is not None}
            stepped, _ = update({n: self.update_params[n] for n in used}, used, 0, self.lr)
            self.update_params.update(stepped)
        options = dict(
            create_graph=second_order or self.adapt_transform,
            retain_graph=second_order or self.adapt_transform,
            allow_unused=allow_unused,
            allow_nograd=allow_nograd,
        )
        updates = torch.func.functional_call(
            self._compute_update, self.update_params, (loss, list(self.params.values())), options
        )
        self.take_step(dict(zip(self.params, updates, strict=True)))
        self._params_updated = True

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
        adapt_transform: bool | None = None,
    ) -> GBMLLearner:
        """A copy that adapts independently from this learner's current tensors."""
        return GBMLLearner(
            self.model, self.params, self.buffers, compute_update=self._compute_update,
            update_params=self.update_params,
            adapt_transform=self.adapt_transform if adapt_transform is None else adapt_transform,
            params_updated=self._params_updated, lr=self.lr,
            first_order=self.first_order if first_order is None else first_order,
            allow_unused=self.allow_unused if allow_unused is None else allow_unused,
            allow_nograd=self.allow_nograd if allow_nograd is None else allow_nograd,
            step=self.step, training=self._training,
        )  # fmt: skip


class GBML(nn.Module):
    """learn2learn's general gradient-based meta-learner.

    Args:
        module: the module to wrap.
        transform: called with each parameter, returns the module mapping its gradient to its
            update (see :mod:`fastmeta.compat.learn2learn.optim.transforms`).
        lr: the fast-adaptation learning rate.
        adapt_transform: adapt the transforms' parameters in the inner loop too.
        first_order: ignore second derivatives.
        allow_unused: allow parameters the loss does not use.
        allow_nograd: allow parameters with ``requires_grad=False`` (not adapted).
        compute_update: (keyword) a ready :class:`ParameterUpdate` instead of building one.
    """

    def __init__(
        self,
        module: nn.Module,
        transform: Transform,
        lr: float = 1.0,
        adapt_transform: bool = False,
        first_order: bool = False,
        allow_unused: bool = False,
        allow_nograd: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - {"compute_update"})
        if unknown:
            raise TypeError(f"GBML got unexpected keyword argument(s) {unknown}")
        self.module = module
        self.transform = transform
        self.lr = lr
        self.adapt_transform = adapt_transform
        self.first_order = first_order
        self.allow_unused = allow_unused
        self.allow_nograd = allow_nograd
        update = kwargs.get("compute_update")
        self.compute_update = (
            ParameterUpdate(module.parameters(), transform) if update is None else update
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
        adapt_transform: bool | None = None,
    ) -> GBMLLearner:
        """A learner starting at the current parameters and transforms."""
        params, buffers = module_state(self.module)
        return GBMLLearner(
            self.module, params, buffers, compute_update=self.compute_update,
            update_params=dict(self.compute_update.named_parameters()),
            adapt_transform=self.adapt_transform if adapt_transform is None else adapt_transform,
            lr=self.lr, first_order=self.first_order if first_order is None else first_order,
            allow_unused=self.allow_unused if allow_unused is None else allow_unused,
            allow_nograd=self.allow_nograd if allow_nograd is None else allow_nograd,
        )  # fmt: skip

    def adapt(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Refused: adapting the wrapper itself would replace its meta-parameters."""
        raise TypeError(
            "GBML.adapt() would overwrite the meta-parameters; adapt a clone instead: "
            "learner = gbml.clone(); learner.adapt(loss)"
        )
