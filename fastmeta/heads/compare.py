"""Score several heads on the same episodes: per-episode query accuracy of each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from fastmeta.heads.base import FeatureHead, ImageHead, embed_episodes, episode_ways
from fastmeta.tasks import TaskBatch


def compare_heads(
    heads: Mapping[str, FeatureHead | ImageHead],
    batches: Iterable[TaskBatch],
    encoder: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Per-episode query accuracy ``[episodes]`` of each head over ``batches``.

    Batches of features (``support_x [B, S, D]``, from :mod:`fastmeta.features`) go to the
    feature heads as they are; batches of images are embedded once by ``encoder`` (eval mode,
    no gradients) for all feature heads, and image heads adapt a copy of ``encoder`` on them.
    """
    scores: dict[str, list[Tensor]] = {name: [] for name in heads}
    for batch in batches:
        ways = episode_ways(batch)
        features = batch.support_x.dim() == 3
        if not features and encoder is None:
            raise ValueError("image episodes need the encoder that embeds them")
        embedded = None
        for name, h in heads.items():
            if isinstance(h, ImageHead):
                if features or encoder is None:
                    raise ValueError(
                        f"head {name!r} fine-tunes the encoder on images: it cannot run on frozen "
                        "features; use image episodes"
                    )
                logits = h.adapt(encoder, batch, ways)
            else:
                if embedded is None:
                    embedded = (
                        (batch.support_x, batch.query_x)
                        if features or encoder is None
                        else embed_episodes(encoder, batch)
                    )
                logits = h(embedded[0], batch.support_y, embedded[1], ways)
            correct = (logits.argmax(-1) == batch.query_y.to(logits.device)).float().mean(-1)
            scores[name].append(correct.cpu())
    return {name: torch.cat(values) for name, values in scores.items()}
