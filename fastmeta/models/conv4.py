"""The 4-block CNN of MAML / Prototypical Networks / Matching Networks.

Each block: 3x3 convolution with ``hidden`` filters, BatchNorm, ReLU, then either stride 2
(MAML's Omniglot network) or 2x2 max-pooling (ProtoNets, MAML on mini-ImageNet). BatchNorm uses
batch statistics always (``track_running_stats=False``), as in MAML's reference code. Features
are averaged over space and fed to a linear ``head`` (omitted when ``out_features`` is None,
e.g. as an embedding for Prototypical Networks).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int, downsample: str) -> nn.Sequential:
    """3x3 conv + BatchNorm (batch statistics) + ReLU, downsampled by stride or max-pool."""
    stride = 2 if downsample == "stride" else 1
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.ReLU(),
    ]
    if downsample == "maxpool":
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Conv4(nn.Module):
    """Four conv blocks, spatial mean, optional linear head."""

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int | None = 5,
        hidden: int = 64,
        downsample: Literal["stride", "maxpool"] = "stride",
        blocks: int = 4,
    ) -> None:
        super().__init__()
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"downsample must be 'stride' or 'maxpool', got {downsample!r}")
        channels = [in_channels] + [hidden] * blocks
        self.features = nn.Sequential(
            *(conv_block(channels[i], channels[i + 1], downsample) for i in range(blocks))
        )
        self.head = nn.Linear(hidden, out_features) if out_features is not None else None

    def forward(self, x: Tensor) -> Tensor:
        features: Tensor = self.features(x).mean(dim=(-2, -1))
        out: Tensor = features if self.head is None else self.head(features)
        return out
