"""The networks of Relation Networks (Sung et al. 2018): the embedding module (Conv4 with
max-pooling after its first two blocks only) and the relation module that scores pairs."""

from __future__ import annotations

from torch import Tensor, nn


def _conv_block(in_channels: int, out_channels: int, padding: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=padding),
        nn.BatchNorm2d(out_channels, track_running_stats=False),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def relation_encoder(in_channels: int = 1, hidden: int = 64) -> nn.Sequential:
    """The paper's embedding module: four 3x3 conv blocks (BatchNorm, ReLU), the first two
    unpadded and max-pooled, the last two padded and not pooled (28x28 -> ``[hidden, 5, 5]``).
    BatchNorm uses batch statistics, as the library's Conv4 does."""
    return nn.Sequential(
        _conv_block(in_channels, hidden, padding=0, pool=True),
        _conv_block(hidden, hidden, padding=0, pool=True),
        _conv_block(hidden, hidden, padding=1, pool=False),
        _conv_block(hidden, hidden, padding=1, pool=False),
    )


class RelationModule(nn.Module):
    """Scores concatenated feature-map pairs ``[N, 2C, H, W] -> [N]`` (pre-sigmoid).

    Two padded conv blocks, each max-pooled (the paper's 5x5 maps become 1x1), a spatial mean
    (so larger maps also work), then ``hidden -> fc_hidden -> 1`` with a ReLU between.
    """

    def __init__(self, feature_channels: int, hidden: int = 64, fc_hidden: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(2 * feature_channels, hidden, padding=1, pool=True),
            _conv_block(hidden, hidden, padding=1, pool=True),
        )
        self.fc = nn.Sequential(nn.Linear(hidden, fc_hidden), nn.ReLU(), nn.Linear(fc_hidden, 1))

    def forward(self, pairs: Tensor) -> Tensor:
        if pairs.shape[-1] < 4 or pairs.shape[-2] < 4:
            raise ValueError(
                "the relation module max-pools twice and needs feature maps of at least 4x4; got "
                f"{tuple(pairs.shape[-2:])}: use an encoder that downsamples less"
            )
        scores: Tensor = self.fc(self.features(pairs).mean(dim=(-2, -1)))
        return scores.squeeze(-1)
