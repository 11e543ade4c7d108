"""N-way K-shot episode sampling as index arrays, a whole meta-batch at once.

An episode picks ``ways`` distinct classes in random order (column ``j`` gets label ``j``) and,
within each class, the first ``shots + queries`` images of a random permutation: the first
``shots`` are the support set, the rest the query set. Episode ``i`` of a seeded stream is a pure
function of (seed, i) (see :mod:`fastmeta.data.counter_rng`), so batches can be drawn in any
order, a run resumes from an integer, and evaluation sets do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.data.checks import check_positive, describe_class
from fastmeta.data.counter_rng import distinct_below, draw_bits, episode_keys, shuffled_prefix


@dataclass(frozen=True)
class EpisodeIndices:
    """Index arrays of a batch of episodes over a store's classes.

    ``classes [B, N]``: the store class behind label ``j`` of each episode.
    ``positions [B, N, K+Q]``: positions within each class (into
    :meth:`ImageStore.class_image_indices`); the first ``shots`` are support, the rest query.
    """

    classes: Tensor
    positions: Tensor
    shots: int


class EpisodeSampler:
    """Draws N-way K-shot Q-query episodes over classes of the given sizes.

    Args:
        class_sizes: ``[num_classes]`` images per class (``ImageStore.class_sizes``); draws run
            on its device.
        ways, shots, queries: classes per episode, support and query images per class
            (``queries`` may be 0 for an empty query set).
        seed: the stream; episode ``i`` depends only on (seed, i).
        class_names: names used in error messages.
    """

    def __init__(
        self,
        class_sizes: Tensor | Sequence[int],
        ways: int,
        shots: int,
        queries: int,
        seed: int = 0,
        class_names: Sequence[str] | None = None,
    ) -> None:
        check_positive(ways=ways, shots=shots)
        if isinstance(queries, bool) or not isinstance(queries, int) or queries < 0:
            raise ValueError(f"queries must be a non-negative integer, got {queries!r}")
        sizes = torch.as_tensor(class_sizes, dtype=torch.int64)
        if ways > sizes.numel():
            raise ValueError(
                f"ways={ways} but only {sizes.numel()} classes are available; lower ways to at "
                f"most {sizes.numel()} or use a split with more classes"
            )
        smallest = int(sizes.argmin())
        if shots + queries > int(sizes[smallest]):
            raise ValueError(
                f"shots + queries = {shots} + {queries} = {shots + queries} images per class, but "
                f"{describe_class(smallest, class_names)} has only {int(sizes[smallest])}; lower "
                f"shots or queries to fit, or drop classes smaller than {shots + queries}"
            )
        self.class_sizes = sizes
        self.ways = ways
        self.shots = shots
        self.queries = queries
        self.seed = seed
        self._max_size = int(sizes.max())
        self._uniform = bool((sizes == self._max_size).all())

    @property
    def device(self) -> torch.device:
        return self.class_sizes.device

    def sample(self, start: int, count: int = 1) -> EpisodeIndices:
        """Episodes ``start .. start+count-1`` of the stream, drawn together."""
        check_positive(count=count)
        if start < 0:
            raise ValueError(f"episode indices start at 0; got start={start}")
        ways, per_class = self.ways, self.shots + self.queries
        keys = episode_keys(self.seed, start, count, self.device)
        # Draw layout per episode: 2*ways class draws, then one sort key per (class, position).
        bits = draw_bits(keys, 0, 2 * ways + ways * self._max_size)
        classes = distinct_below(
            bits[:, : 2 * ways].reshape(count, 2, ways), int(self.class_sizes.numel())
        )
        sizes = None if self._uniform else self.class_sizes[classes]
        sort_keys = bits[:, 2 * ways :].reshape(count, ways, self._max_size)
        positions = shuffled_prefix(sort_keys, sizes, per_class)
        return EpisodeIndices(classes, positions, self.shots)
