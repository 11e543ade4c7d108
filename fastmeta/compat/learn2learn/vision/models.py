"""learn2learn's vision models: the 4-block CNNs of Omniglot and mini-ImageNet, the fully
connected Omniglot network, ResNet-12 and WRN-28-10, each ``features`` then ``classifier``.

The CNNs keep learn2learn's layers, initialisation and BatchNorm (with running statistics).
ResNet-12 is fastmeta's (:class:`fastmeta.models.ResNet12`, MetaOptNet's architecture): its
BatchNorm always uses batch statistics, it has DropBlock after the last two blocks but no
dropout in the first two and no DropBlock warm-up, and it pools by the spatial mean (learn2learn:
5x5 average pooling, which needs 84x84 inputs). WRN-28-10 is the pre-activation wide ResNet of
Zagoruyko & Komodakis, pooled by the spatial mean.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from fastmeta.compat.learn2learn.nn.misc import Flatten, Lambda
from fastmeta.models import ResNet12 as ResidualNetwork12

__all__ = [
    "CNN4",
    "WRN28",
    "CNN4Backbone",
    "ConvBase",
    "ConvBlock",
    "MiniImagenetCNN",
    "OmniglotCNN",
    "OmniglotFC",
    "ResNet12",
    "ResNet12Backbone",
    "WRN28Backbone",
    "fc_init_",
    "maml_init_",
]


def fc_init_(module: nn.Module) -> nn.Module:
    """Weights from a normal of std 0.01 truncated at two std, biases zero (MAML's FC init)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if isinstance(weight, Tensor):
        nn.init.trunc_normal_(weight.data, std=0.01, a=-0.02, b=0.02)
    if isinstance(bias, Tensor):
        nn.init.zeros_(bias.data)
    return module


def maml_init_(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights, zero biases (MAML's convolution init)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if isinstance(weight, Tensor):
        nn.init.xavier_uniform_(weight.data, gain=1.0)
    if isinstance(bias, Tensor):
        nn.init.zeros_(bias.data)
    return module


class LinearBlock(nn.Module):
    """Linear, BatchNorm (batch statistics, eps 1e-3), ReLU."""

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.normalize = nn.BatchNorm1d(
            output_size, affine=True, momentum=0.999, eps=1e-3, track_running_stats=False
        )
        self.linear = fc_init_(nn.Linear(input_size, output_size))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.normalize(self.linear(x)))
        return out


class ConvBlock(nn.Module):
    """3x3 convolution, BatchNorm, ReLU, then 2x2 max-pooling (``max_pool``) or stride 2.

    ``max_pool_factor`` scales the pooling window and stride (``int(2 * factor)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        max_pool: bool = True,
        max_pool_factor: float = 1.0,
    ) -> None:
        super().__init__()
        stride = int(2 * max_pool_factor)
        self.max_pool: nn.Module = (
            nn.MaxPool2d(kernel_size=stride, stride=stride) if max_pool else nn.Identity()
        )
        self.normalize = nn.BatchNorm2d(out_channels, affine=True)
        nn.init.uniform_(self.normalize.weight)
        self.relu = nn.ReLU()
        self.conv = maml_init_(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=1 if max_pool else stride,
                      padding=1, bias=True)
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.max_pool(self.relu(self.normalize(self.conv(x))))
        return out


class ConvBase(nn.Sequential):
    """``layers`` ConvBlocks of ``hidden`` channels from ``channels`` input channels."""

    def __init__(
        self,
        hidden: int = 64,
        channels: int = 1,
        max_pool: bool = False,
        layers: int = 4,
        max_pool_factor: float = 1.0,
    ) -> None:
        widths = [channels] + [hidden] * layers
        super().__init__(
            *(
                ConvBlock(widths[i], hidden, (3, 3), max_pool, max_pool_factor)
                for i in range(layers)
            )
        )


def _omniglot_image(x: Tensor) -> Tensor:
    return x.view(-1, 1, 28, 28)


def _spatial_mean(x: Tensor) -> Tensor:
    return x.mean(dim=[2, 3])


class OmniglotFC(nn.Module):
    """The fully connected Omniglot network (Santoro et al. 2016): LinearBlocks of ``sizes``
    (default 256-128-64-64) over the flattened input, then a linear classifier."""

    def __init__(self, input_size: int, output_size: int, sizes: list[int] | None = None) -> None:
        super().__init__()
        sizes = [256, 128, 64, 64] if sizes is None else sizes
        widths = [input_size, *sizes]
        blocks = [LinearBlock(widths[i], widths[i + 1]) for i in range(len(sizes))]
        self.features = nn.Sequential(Flatten(), nn.Sequential(*blocks))
        self.classifier = fc_init_(nn.Linear(sizes[-1], output_size))
        self.input_size = input_size

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.features(x))
        return out


class OmniglotCNN(nn.Module):
    """MAML's Omniglot CNN (Finn et al. 2017) for ``1 x 28 x 28`` inputs: strided ConvBlocks,
    the spatial mean, a linear classifier."""

    def __init__(self, output_size: int = 5, hidden_size: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        base = ConvBase(hidden=hidden_size, channels=1, max_pool=False, layers=layers)
        self.features = nn.Sequential(
            Lambda(_omniglot_image), base, Lambda(_spatial_mean), Flatten()
        )
        self.classifier = nn.Linear(hidden_size, output_size, bias=True)
        self.classifier.weight.data.normal_()
        self.classifier.bias.data.mul_(0.0)

    @property
    def base(self) -> ConvBase:
        """The convolutional blocks (registered once, under ``features.1``: learn2learn also
        registers them as ``base``, which duplicates them in its ``state_dict``)."""
        return cast(ConvBase, self.features[1])

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.features(x))
        return out


class CNN4Backbone(ConvBase):
    """ConvBase whose output is flattened to ``[batch, -1]``."""

    def __init__(
        self,
        hidden_size: int = 64,
        layers: int = 4,
        channels: int = 3,
        max_pool: bool = False,
        max_pool_factor: float = 1.0,
    ) -> None:
        super().__init__(hidden_size, channels, max_pool, layers, max_pool_factor)

    def forward(self, x: Tensor) -> Tensor:
        for block in self:
            x = block(x)
        return x.reshape(x.size(0), -1)


class CNN4(nn.Module):
    """The mini-ImageNet CNN (Ravi & Larochelle 2017) for ``3 x 84 x 84`` inputs: max-pooled
    ConvBlocks, flattened (``25 * hidden_size`` features), a linear classifier."""

    def __init__(
        self,
        output_size: int,
        hidden_size: int = 64,
        layers: int = 4,
        channels: int = 3,
        max_pool: bool = True,
        embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        embedding_size = 25 * hidden_size if embedding_size is None else embedding_size
        self.features = CNN4Backbone(hidden_size, layers, channels, max_pool, 4 // layers)
        self.classifier = maml_init_(nn.Linear(embedding_size, output_size, bias=True))
        self.hidden_size = hidden_size

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.features(x))
        return out


MiniImagenetCNN = CNN4


class ResNet12Backbone(nn.Module):
    """ResNet-12 features: widths 64-160-320-640 (``wider``) or 64-128-256-512; the spatial
    mean (``avg_pool``) or the flattened map; dropout on the embedding."""

    def __init__(
        self,
        avg_pool: bool = True,
        wider: bool = True,
        embedding_dropout: float = 0.0,
        dropblock_dropout: float = 0.1,
        dropblock_size: int = 5,
        channels: int = 3,
    ) -> None:
        super().__init__()
        widths = (64, 160, 320, 640) if wider else (64, 128, 256, 512)
        self.body = ResidualNetwork12(
            channels, None, widths, feature_map=not avg_pool, drop_rate=dropblock_dropout,
            drop_block_size=dropblock_size,
        )  # fmt: skip
        self.flatten = Flatten()
        self.dropout = nn.Dropout(p=embedding_dropout)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.dropout(self.flatten(self.body(x)))
        return out


class ResNet12(nn.Module):
    """ResNet-12 (Mishra et al. 2017; Lee et al. 2019) with a linear classifier over its
    ``hidden_size`` features (640 with ``avg_pool``)."""

    def __init__(
        self,
        output_size: int,
        hidden_size: int = 640,
        avg_pool: bool = True,
        wider: bool = True,
        embedding_dropout: float = 0.0,
        dropblock_dropout: float = 0.1,
        dropblock_size: int = 5,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.features = ResNet12Backbone(
            avg_pool, wider, embedding_dropout, dropblock_dropout, dropblock_size, channels
        )
        self.classifier = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.features(x))
        return out


class WideBlock(nn.Module):
    """Pre-activation wide residual block: BN, ReLU, conv, dropout, BN, ReLU, conv (strided),
    plus a 1x1 projection of the input when the shape changes."""

    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride))

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.conv1(self.bn1(x).relu()))
        out = self.conv2(self.bn2(out).relu())
        result: Tensor = out + self.shortcut(x)
        return result


class WRN28Backbone(nn.Module):
    """WRN-28-10 features (Dhillon et al. 2020): 3 groups of 4 wide blocks of 160, 320, 640
    channels, BatchNorm and ReLU, the spatial mean: 640 features."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=True)
        layers, in_planes = [], 16
        for planes, stride in ((160, 1), (320, 2), (640, 2)):
            blocks = []
            for i in range(4):
                blocks.append(WideBlock(in_planes, planes, dropout, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = nn.BatchNorm2d(640, momentum=0.9)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        pooled: Tensor = self.bn1(out).relu().mean(dim=(-2, -1))
        return pooled


class WRN28(nn.Module):
    """WRN-28-10 with a linear classifier over its ``hidden_size`` (640) features."""

    def __init__(self, output_size: int, hidden_size: int = 640, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = WRN28Backbone(dropout=dropout)
        self.classifier = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(self.features(x))
        return out
