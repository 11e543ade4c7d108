"""``eval.heads``: score test-time heads on a run's own test episodes, from its embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fastmeta.train.precision import precision


def score_heads(
    algorithm: nn.Module,
    method: str,
    source: Any,
    episodes: int,
    names: Sequence[str],
    device: torch.device,
) -> dict[str, Tensor]:
    """Per-episode query accuracy ``[episodes]`` of each head in ``names`` on ``source``'s
    fixed episodes (the ones the method itself is scored on), the heads reading the embedding
    of :func:`~fastmeta.heads.encoder.head_encoder`; the trained weights are left unchanged."""
    from fastmeta.heads.compare import compare_heads
    from fastmeta.heads.encoder import head_encoder
    from fastmeta.heads.registry import HEADS

    encoder = head_encoder(algorithm, method)
    with precision("float32", device):
        return compare_heads({n: HEADS[n] for n in names}, source.evaluation(episodes), encoder)
