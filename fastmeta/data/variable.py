"""Variable-way, variable-shot episodes as in Meta-Dataset.

Follows the episode sampling procedure of Triantafillou et al., "Meta-Dataset: A Dataset of
Datasets for Learning to Learn from Few Examples", ICLR 2020 (section 3.2):

1. ways ``N`` uniform in ``[min_ways, min(max_ways, num_classes)]`` (5 and 50 in the paper),
   then ``N`` distinct classes uniformly at random;
2. queries per class ``q = min(max_queries, floor(min_c size_c / 2))`` (``max_queries`` = 10);
3. a support budget ``S = min(max_support, sum_c ceil(beta * min(max_support_per_class,
   size_c - q)))`` with ``beta ~ U(0, 1]`` (500 and 100 in the paper);
4. shots proportional to random class weights: ``w_c = exp(a_c)``, ``a_c ~ U[log 1/2, log 2)``,
   ``k_c = min(floor(w_c / sum w * (S - N)) + 1, size_c - q)``, so every class has a shot and
   larger classes tend to give more.

Such episodes have different shapes, so each one is a single task rather than part of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.data.checks import check_positive, describe_class
from fastmeta.data.counter_rng import (
    below,
    distinct_below,
    draw_bits,
    episode_keys,
    shuffled_prefix,
    unit_interval,
)


@dataclass(frozen=True)
class VariableEpisode:
    """Index arrays of one variable-way, variable-shot episode.

    ``classes [N]``: the store class behind label ``j``; ``shots [N]`` support images per class;
    ``queries``: query images per class. ``support_labels``/``support_positions [sum(shots)]`` and
    ``query_labels``/``query_positions [N * queries]`` list the images class by class.
    """

    classes: Tensor
    shots: Tensor
    queries: int
    support_labels: Tensor
    support_positions: Tensor
    query_labels: Tensor
    query_positions: Tensor

    @property
    def ways(self) -> int:
        return int(self.classes.numel())


class VariableEpisodeSampler:
    """Draws Meta-Dataset-style episodes over classes of the given sizes (see the module text).

    Args:
        class_sizes: ``[num_classes]`` images per class, each at least 2 (one support, one
            query); draws run on its device.
        seed: the stream; episode ``i`` depends only on (seed, i).
        min_ways, max_ways, max_queries, max_support, max_support_per_class: the bounds of the
            procedure (the paper's values by default). ``max_ways`` is capped at the number of
            classes.
        class_names: names used in error messages.
    """

    def __init__(
        self,
        class_sizes: Tensor | Sequence[int],
        seed: int = 0,
        min_ways: int = 5,
        max_ways: int = 50,
        max_queries: int = 10,
        max_support: int = 500,
        max_support_per_class: int = 100,
        class_names: Sequence[str] | None = None,
    ) -> None:
        check_positive(
            min_ways=min_ways,
            max_ways=max_ways,
            max_queries=max_queries,
            max_support=max_support,
            max_support_per_class=max_support_per_class,
        )
        if min_ways > max_ways:
            raise ValueError(f"min_ways={min_ways} exceeds max_ways={max_ways}; swap or fix them")
        sizes = torch.as_tensor(class_sizes, dtype=torch.int64)
        if sizes.numel() < min_ways:
            raise ValueError(
                f"variable-way episodes need at least min_ways={min_ways} classes but only "
                f"{sizes.numel()} are available; lower min_ways or use a split with more classes"
            )
        smallest = int(sizes.argmin())
        if int(sizes[smallest]) < 2:
            raise ValueError(
                f"{describe_class(smallest, class_names)} has {int(sizes[smallest])} image(s); "
                "variable-shot episodes need at least 2 per class (one support, one query): "
                "drop such classes"
            )
        if max_support < min(max_ways, sizes.numel()):
            raise ValueError(
                f"max_support={max_support} cannot give each of up to "
                f"{min(max_ways, sizes.numel())} classes one shot; raise it or lower max_ways"
            )
        self.class_sizes = sizes
        self.seed = seed
        self.min_ways = min_ways
        self.max_ways = min(max_ways, int(sizes.numel()))
        self.max_queries = max_queries
        self.max_support = max_support
        self.max_support_per_class = max_support_per_class
        self._max_size = int(sizes.max())

    def sample(self, index: int) -> VariableEpisode:
        """Episode ``index`` of the stream."""
        if index < 0:
            raise ValueError(f"episode indices start at 0; got {index}")
        device = self.class_sizes.device
        top = self.max_ways
        key = episode_keys(self.seed, index, 1, device)
        # Draw layout: ways, beta, `top` class weights, 2*top class draws, then the sort keys.
        bits = draw_bits(key, 0, 2 + 3 * top)[0]
        ways = self.min_ways + int(below(bits[0], top - self.min_ways + 1))
        beta = 1.0 - float(unit_interval(bits[1]))
        log_weights = math.log(0.5) + unit_interval(bits[2 : 2 + ways]) * math.log(4.0)
        class_draws = bits[2 + top : 2 + 3 * top].reshape(1, 2, top)[:, :, :ways]
        classes = distinct_below(class_draws, int(self.class_sizes.numel()))[0]
        sizes = self.class_sizes[classes]

        queries = min(self.max_queries, int(sizes.min()) // 2)
        room = sizes - queries
        budget = min(
            self.max_support,
            int(torch.ceil(beta * room.clamp(max=self.max_support_per_class).double()).sum()),
        )
        weights = log_weights.exp()
        weights = weights / weights.sum()
        shots = torch.minimum(torch.floor(weights * (budget - ways)).long() + 1, room)

        sort_keys = draw_bits(key, 2 + 3 * top, ways * self._max_size)
        sort_keys = sort_keys.reshape(ways, self._max_size)
        positions = shuffled_prefix(sort_keys, sizes, int((shots + queries).max()))
        column = torch.arange(positions.shape[1], device=device)
        query_mask = column < queries
        support_mask = ~query_mask & (column < (queries + shots).unsqueeze(1))
        labels = torch.arange(ways, device=device).unsqueeze(1).expand_as(positions)
        query_mask = query_mask.expand_as(positions)
        return VariableEpisode(
            classes,
            shots,
            queries,
            labels[support_mask],
            positions[support_mask],
            labels[query_mask],
            positions[query_mask],
        )
