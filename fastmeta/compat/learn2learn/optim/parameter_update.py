"""learn2learn's ``ParameterUpdate``: gradients passed through a learned transform each."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

Transform = Callable[[Tensor], nn.Module | None]


class ParameterUpdate(nn.Module):
    """Like ``torch.autograd.grad``, but returns each gradient passed through its own transform.

    Args:
        parameters: the parameters whose updates are computed.
        transform: called with each parameter, returns the module that maps its gradient to its
            update (learnable: it is a submodule here), or None for the raw gradient.
    """

    def __init__(self, parameters: Iterable[Tensor], transform: Transform) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        self.transforms_indices: list[int | None] = []
        for param in parameters:
            module = transform(param)
            if module is not None and not isinstance(module, nn.Module):
                raise ValueError(
                    f"the transform must return an nn.Module or None for each parameter; got "
                    f"{type(module).__name__}"
                )
            self.transforms_indices.append(None if module is None else len(modules))
            if module is not None:
                modules.append(module)
        self.transforms_modules = nn.ModuleList(modules)

    def forward(
        self,
        loss: Tensor,
        parameters: Iterable[Tensor],
        create_graph: bool = False,
        retain_graph: bool = False,
        allow_unused: bool = False,
        allow_nograd: bool = False,
    ) -> list[Tensor | None]:
        """The update of each of ``parameters`` (the ones given at construction, in order).

        ``create_graph``, ``retain_graph`` and ``allow_unused`` are as for
        ``torch.autograd.grad``; with ``allow_nograd`` a parameter that requires no grad gets
        the update None instead of an error.
        """
        parameters = list(parameters)
        if len(parameters) != len(self.transforms_indices):
            raise ValueError(
                f"{len(parameters)} parameters given to a ParameterUpdate built for "
                f"{len(self.transforms_indices)}; pass the same parameters, in order"
            )
        frozen = [i for i, p in enumerate(parameters) if not p.requires_grad]
        if frozen and not allow_nograd:
            raise ValueError(
                f"parameter(s) {frozen} (by position) do not require grad; pass allow_nograd=True"
            )
        differentiable = [p for p in parameters if p.requires_grad]
        grads = iter(
            torch.autograd.grad(
                loss, differentiable, create_graph=create_graph,
                retain_graph=retain_graph or create_graph, allow_unused=True,
            )
        )  # fmt: skip
        gradients = [None if not p.requires_grad else next(grads) for p in parameters]
        unused = [
            i
            for i, (p, g) in enumerate(zip(parameters, gradients, strict=True))
            if p.requires_grad and g is None
        ]
        if unused and not allow_unused:
            raise ValueError(
                f"the loss does not use parameter(s) {unused} (by position); pass allow_unused=True"
            )
        return [
            g if g is None or index is None else self.transforms_modules[index](g)
            for g, index in zip(gradients, self.transforms_indices, strict=True)
        ]
