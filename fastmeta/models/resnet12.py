"""ResNet-12, the backbone of TADAM (Oreshkin et al. 2018) and MetaOptNet (Lee et al. 2019).

Four residual blocks; each has three 3x3 convolutions with BatchNorm (LeakyReLU 0.1 between
them), a 1x1 convolution with BatchNorm on the shortcut, LeakyReLU after the sum, and 2x2
max-pooling. Widths 64-160-320-640 by default (84x84 images give ``[640, 5, 5]``). BatchNorm
uses batch statistics always (``track_running_stats=False``), like the library's Conv4, so the
network runs unchanged under the functional engine and ``vmap`` (per-episode, transductive
statistics). ``drop_rate > 0`` adds DropBlock after the last two blocks, MetaOptNet's
regularisation (block size 5 there); it is active in training only.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fastmeta.models.dropblock import DropBlock


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
    ]


class ResidualBlock(nn.Module):
    """Three 3x3 conv + BatchNorm layers with a projected shortcut, then 2x2 max-pooling."""

    def __init__(self, in_channels: int, out_channels: int, slope: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels, 3),
            nn.LeakyReLU(slope),
            *_conv_bn(out_channels, out_channels, 3),
            nn.LeakyReLU(slope),
            *_conv_bn(out_channels, out_channels, 3),
        )
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1))
        self.activation = nn.LeakyReLU(slope)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.pool(self.activation(self.body(x) + self.shortcut(x)))
        return out


class ResNet12(nn.Module):
    """Four residual blocks; then a spatial mean and an optional linear ``head``.

    Args:
        in_channels: image channels.
        out_features: outputs of the linear head; ``None`` returns the pooled embedding.
        channels: widths of the four blocks.
        feature_map: return the last block's map ``[N, C, H, W]`` (no mean, no head), e.g. for
            Relation Networks.
        drop_rate, drop_block_size: DropBlock after blocks 3 and 4 (0: none).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_features: int | None = None,
        channels: Sequence[int] = (64, 160, 320, 640),
        feature_map: bool = False,
        drop_rate: float = 0.0,
        drop_block_size: int = 5,
    ) -> None:
        super().__init__()
        if len(channels) != 4 or any(c < 1 for c in channels):
            raise ValueError(f"channels must be four positive widths, got {tuple(channels)}")
        if feature_map and out_features is not None:
            raise ValueError("feature_map=True returns the map itself; set out_features=None")
        widths = [in_channels, *channels]
        blocks: list[nn.Module] = []
        for i in range(4):
            blocks.append(ResidualBlock(widths[i], widths[i + 1]))
            if i >= 2 and drop_rate > 0:
                blocks.append(DropBlock(drop_rate, drop_block_size))
        self.blocks = nn.Sequential(*blocks)
        self.feature_map = feature_map
        self.head = nn.Linear(channels[-1], out_features) if out_features is not None else None

    def forward(self, x: Tensor) -> Tensor:
        features: Tensor = self.blocks(x)
        if self.feature_map:
            return features
        pooled = features.mean(dim=(-2, -1))
        out: Tensor = pooled if self.head is None else self.head(pooled)
        return out
