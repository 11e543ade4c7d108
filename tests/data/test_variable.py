"""Meta-Dataset-style variable-way, variable-shot episodes against the paper's definition."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmeta.data import VariableEpisode, VariableEpisodeSampler, VariableTaskSet
from fastmeta.data.counter_rng import draw_bits, episode_keys
from tests.data.stores import random_store


def reference_shape(
    sampler: VariableEpisodeSampler, index: int, classes: list[int]
) -> tuple[int, int, list[int]]:
    """Ways, queries and shots by Triantafillou et al. (2020), sec. 3.2, in plain floats.

    Uses the sampler's documented draw layout: ways, beta, then one log-weight per class.
    """
    top = sampler.max_ways
    bits = draw_bits(episode_keys(sampler.seed, index, 1, "cpu"), 0, 2 + top)[0].tolist()
    ways = sampler.min_ways + (bits[0] * (top - sampler.min_ways + 1) >> 32)
    beta = 1.0 - bits[1] / 2**32
    sizes = [int(sampler.class_sizes[c]) for c in classes]
    queries = min(sampler.max_queries, math.floor(0.5 * min(sizes)))
    budget = min(
        sampler.max_support,
        sum(math.ceil(beta * min(sampler.max_support_per_class, s - queries)) for s in sizes),
    )
    weights = [math.exp(math.log(0.5) + b / 2**32 * math.log(4.0)) for b in bits[2 : 2 + ways]]
    total = sum(weights)
    shots = [
        min(math.floor(w / total * (budget - ways)) + 1, s - queries)
        for w, s in zip(weights, sizes, strict=True)
    ]
    return ways, queries, shots


def assert_valid(episode: VariableEpisode, sampler: VariableEpisodeSampler, index: int) -> None:
    classes = episode.classes.tolist()
    ways, queries, shots = reference_shape(sampler, index, classes)
    assert episode.ways == ways and len(set(classes)) == ways
    assert sampler.min_ways <= ways <= min(50, sampler.class_sizes.numel())
    assert episode.queries == queries >= 1
    assert episode.shots.tolist() == shots
    assert sum(shots) <= sampler.max_support and min(shots) >= 1
    assert episode.support_labels.tolist() == [j for j in range(ways) for _ in range(shots[j])]
    assert episode.query_labels.tolist() == [j for j in range(ways) for _ in range(queries)]
    for j, c in enumerate(classes):
        support = episode.support_positions[episode.support_labels == j]
        query = episode.query_positions[episode.query_labels == j]
        together = torch.cat([support, query])
        assert together.unique().numel() == together.numel()  # disjoint, no repeats
        assert int(together.max()) < int(sampler.class_sizes[c])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 300), min_size=5, max_size=80),
    seed=st.integers(0, 2**64 - 1),
    index=st.integers(0, 10**9),
)
def test_episodes_follow_the_meta_dataset_definition(sizes, seed, index):
    sampler = VariableEpisodeSampler(torch.tensor(sizes), seed=seed)
    episode = sampler.sample(index)
    assert_valid(episode, sampler, index)
    again = VariableEpisodeSampler(torch.tensor(sizes), seed=seed).sample(index)
    assert torch.equal(again.support_positions, episode.support_positions)


def test_ways_cover_their_range_and_larger_classes_give_more_shots():
    sizes = torch.tensor([4] * 6 + [200] * 6)
    sampler = VariableEpisodeSampler(sizes, seed=1, min_ways=2, max_ways=12)
    episodes = [sampler.sample(i) for i in range(300)]
    assert {e.ways for e in episodes} == set(range(2, 13))
    small, large = [], []
    for e in episodes:
        for c, k in zip(e.classes.tolist(), e.shots.tolist(), strict=True):
            (small if c < 6 else large).append(k)
    assert sum(large) / len(large) > 2 * sum(small) / len(small)


def test_episodes_differ_by_index_and_seed():
    sampler = VariableEpisodeSampler(torch.full((60,), 30), seed=0)
    a, b = sampler.sample(0), sampler.sample(1)
    c = VariableEpisodeSampler(torch.full((60,), 30), seed=1).sample(0)
    assert not torch.equal(a.classes, b.classes) or not torch.equal(a.shots, b.shots)
    assert not torch.equal(a.classes, c.classes) or not torch.equal(a.shots, c.shots)


def test_task_set_gathers_variable_tasks_of_the_right_classes():
    store = random_store([3, 8, 12, 5, 6, 20, 9], side=4).with_rotations()
    tasks = VariableTaskSet.from_store(store, seed=4)
    for index, task in enumerate(tasks.tasks(0, 5)):
        episode = tasks.sampler.sample(index)
        assert task.support_x.shape == (int(episode.shots.sum()), 1, 4, 4)
        assert task.query_x.shape == (episode.ways * episode.queries, 1, 4, 4)
        assert torch.equal(task.support_y, episode.support_labels)
        for label, c in enumerate(episode.classes.tolist()):
            positions = episode.query_positions[episode.query_labels == label]
            indices = store.class_image_indices(torch.tensor(c), positions)
            expected = torch.rot90(store.images[indices], int(store.class_turns[c]), (2, 3))
            got = (task.query_x[task.query_y == label] * 255).round().to(torch.uint8)
            assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("sizes", "kwargs", "message"),
    [
        ([5] * 4, {}, "need at least min_ways=5 classes but only 4 are available; lower min_ways"),
        ([5, 5, 1, 5, 5], {}, "class 2 has 1 image"),
        ([5] * 6, {"min_ways": 0}, "min_ways must be a positive integer, got 0"),
        ([5] * 6, {"min_ways": 7, "max_ways": 6}, "min_ways=7 exceeds max_ways=6"),
        ([5] * 6, {"max_support": 3}, "max_support=3 cannot give each of up to 6 classes"),
    ],
)
def test_bad_variable_arguments_say_what_to_change(sizes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VariableEpisodeSampler(torch.tensor(sizes), **kwargs)


def test_negative_episode_index_is_refused():
    with pytest.raises(ValueError, match="episode indices start at 0"):
        VariableEpisodeSampler(torch.full((6,), 5)).sample(-1)
