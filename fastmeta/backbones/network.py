"""A pretrained backbone as a fastmeta network: images in [0, 1] in, the output a method needs.

The backbone's expected input (:class:`InputSpec`: size, channel means and deviations) is
applied inside the network, so every method, the trainer, ``adapt`` and ``export`` feed it
the same images as a built-in network: grey images are repeated to three channels, resized
(bilinear, antialiased) when their size differs, then normalised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Output = Literal["logits", "embedding", "feature_map"]


@dataclass(frozen=True)
class InputSpec:
    """What a backbone expects: ``size`` ``(height, width)``, per-channel ``mean`` and
    ``std`` of images in [0, 1], and where these came from (for the docs and messages)."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or min(self.std) <= 0 or min(self.size) < 1:
            raise ValueError(f"an input spec needs one positive std per mean; got {self}")

    def fingerprint(self) -> str:
        """The preprocessing as text, for cache keys."""
        return f"size={self.size[0]}x{self.size[1]} mean={self.mean} std={self.std}"


class Preprocess(nn.Module):
    """Images ``[N, C, H, W]`` in [0, 1] to the backbone's size, channels and scale."""

    mean: Tensor
    std: Tensor

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.size = spec.size
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = self.mean.shape[1]
        if x.shape[1] == 1 and channels != 1:
            x = x.expand(-1, channels, -1, -1)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=True
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class BackboneNetwork(nn.Module):
    """``Preprocess``, then ``backbone``, then ``features`` (its output to an embedding
    ``[N, D]`` or a feature map ``[N, C, H, W]``), then for ``output="logits"`` a linear head.

    ``backbone`` is the library's module itself (its state-dict names are the library's, under
    ``backbone.``); ``frozen`` (set by :func:`fastmeta.backbones.freeze.freeze` with
    ``freeze=all``) keeps it in eval mode, so its BatchNorm statistics stay as loaded.
    """

    def __init__(
        self,
        backbone: nn.Module,
        features: Callable[[nn.Module, Tensor], Tensor],
        spec: InputSpec,
        output: Output,
        feature_dim: int,
        outputs: int,
        name: str,
    ) -> None:
        super().__init__()
        self.preprocess = Preprocess(spec)
        self.backbone = backbone
        self.features = features
        self.spec = spec
        self.name = name
        self.feature_dim = feature_dim
        self.frozen = False
        self.head = nn.Linear(feature_dim, outputs) if output == "logits" else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(self.backbone, self.preprocess(x))
        return out if self.head is None else self.head(out)

    def train(self, mode: bool = True) -> BackboneNetwork:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self
