"""A backbone conditioned on a context vector by FiLM (feature-wise linear modulation).

``ContextModel(backbone, layer, channels, context_dim)(x, context)`` runs ``backbone(x)`` with the
output ``h`` of its sub-module ``layer`` replaced by ``h * (1 + gamma) + beta``, where
``(gamma, beta) = film(context)`` act on the channel dimension (dim 1). The backbone is not
changed: a forward hook is attached for the duration of one call. With ``scale=False`` only
the shift ``beta = W context`` is applied, which for a linear ``layer`` is exactly feeding the
context as extra inputs of that layer (CAVIA's concatenation for fully connected networks).
The FiLM bias starts at zero, so a zero context leaves the backbone's output as it is.
"""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

from fastmeta.models.conv4 import Conv4
from fastmeta.models.mlp import MLP


class ContextModel(nn.Module):
    """``backbone`` with FiLM from a context vector at sub-module ``layer``.

    Args:
        backbone: any network; its sub-module ``layer`` outputs ``[N, channels, ...]``.
        layer: dotted name of that sub-module (as in ``backbone.named_modules()``).
        channels: size of that output's dimension 1.
        context_dim: length of the context vector.
        scale: modulate by ``1 + gamma`` as well as shift by ``beta`` (``False``: shift only,
            with no bias, i.e. concatenation of the context to the layer's input).
    """

    def __init__(
        self,
        backbone: nn.Module,
        layer: str,
        channels: int,
        context_dim: int,
        scale: bool = True,
    ) -> None:
        super().__init__()
        modules = dict(backbone.named_modules())
        if layer not in modules or layer == "":
            names = [n for n in modules if n]
            raise ValueError(f"no sub-module named {layer!r} to modulate; choose one of {names}")
        if context_dim < 1 or channels < 1:
            raise ValueError(
                f"context_dim and channels must be >= 1; got {context_dim}, {channels}"
            )
        self.backbone = backbone
        self.layer = layer
        self.channels = channels
        self.context_dim = context_dim
        self.scale = scale
        self.film = nn.Linear(context_dim, (2 if scale else 1) * channels, bias=scale)
        if scale:
            nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``backbone(x)`` with the output of ``layer`` modulated by ``context [context_dim]``."""
        modulation: Tensor = self.film(context)

        def modulate(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            if output.shape[1] != self.channels:
                raise ValueError(
                    f"{self.layer!r} outputs {output.shape[1]} channels (dim 1), but the FiLM "
                    f"layer was built for channels={self.channels}"
                )
            shape = (1, self.channels) + (1,) * (output.dim() - 2)
            shift = modulation[-self.channels :].reshape(shape)
            if not self.scale:
                return output + shift
            return output * (1 + modulation[: self.channels].reshape(shape)) + shift

        handle = self.backbone.get_submodule(self.layer).register_forward_hook(modulate)
        try:
            out: Tensor = self.backbone(x)
            return out
        finally:
            handle.remove()


def context_model(model: nn.Module, context_dim: int, film_layer: str | None) -> ContextModel:
    """One of fastmeta's networks wrapped to read a context vector (CAVIA's network).

    ``film_layer`` of ``None`` picks the BatchNorm of the third conv block of a :class:`Conv4`
    (as CAVIA's image network) or the first layer of an :class:`MLP`, where the context acts
    as extra inputs (concatenation).
    """
    if isinstance(model, MLP):
        layer = film_layer or ("body.0" if len(model.body) else "head")
        linear = dict(model.named_modules()).get(layer)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"for an mlp, film_layer must name a Linear layer, got {layer!r}")
        return ContextModel(model, layer, linear.out_features, context_dim, scale=False)
    if isinstance(model, Conv4):
        blocks = len(model.features)
        layer = film_layer or f"features.{min(2, blocks - 1)}.1"
        first = cast(nn.Sequential, model.features[0])[0]  # each block is a conv_block
        assert isinstance(first, nn.Conv2d)
        return ContextModel(model, layer, first.out_channels, context_dim)
    raise ValueError(f"CAVIA wraps conv4 or mlp models, got {type(model).__name__}")
