"""DropBlock (Ghiasi et al. 2018): dropout of contiguous square regions of a feature map.

In training, each position of each channel where a whole ``block_size x block_size`` block fits
becomes the centre of a block of zeros with probability ``gamma``, chosen (the paper's formula)
so that about ``drop_rate`` of the map is dropped; the rest is scaled by the kept fraction so
the expected activation is unchanged. In evaluation it is the identity. MetaOptNet
(Lee et al. 2019) regularises ResNet-12 with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DropBlock(nn.Module):
    """Zero ``block_size`` squares covering about ``drop_rate`` of each ``[N, C, H, W]`` map."""

    def __init__(self, drop_rate: float, block_size: int = 5) -> None:
        super().__init__()
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        if block_size < 1 or block_size % 2 == 0:
            raise ValueError(f"block_size must be a positive odd number, got {block_size}")
        self.drop_rate = drop_rate
        self.block_size = block_size

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_rate == 0.0:
            return x
        height, width = x.shape[-2:]
        block = min(self.block_size, height, width)
        valid = (height - block + 1) * (width - block + 1)
        gamma = self.drop_rate * height * width / (block * block * valid)
        centres = x.new_full((*x.shape[:-2], height - block + 1, width - block + 1), gamma)
        seeds = F.pad(torch.bernoulli(centres.clamp(max=1.0)), [block // 2, (block - 1) // 2] * 2)
        dropped = F.max_pool2d(seeds, block, stride=1, padding=block // 2)
        if block % 2 == 0:  # a map smaller than the block: trim the extra row and column
            dropped = dropped[..., :height, :width]
        keep = 1.0 - dropped
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))
