"""EpisodeSampler: the episode definition, random access, uniformity and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmeta.data import EpisodeIndices, EpisodeSampler


def assert_valid_episodes(episodes: EpisodeIndices, sizes: torch.Tensor, shots: int) -> None:
    """Check index arrays against the definition of an N-way K-shot Q-query episode."""
    batch, ways, per_class = episodes.positions.shape
    assert episodes.classes.shape == (batch, ways)
    assert episodes.shots == shots
    for classes, positions in zip(episodes.classes, episodes.positions, strict=True):
        assert classes.unique().numel() == ways  # distinct classes
        assert int(classes.min()) >= 0 and int(classes.max()) < sizes.numel()
        for c, row in zip(classes.tolist(), positions, strict=True):
            assert row.unique().numel() == per_class  # support and query are disjoint
            assert int(row.min()) >= 0 and int(row.max()) < int(sizes[c])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), sizes=st.lists(st.integers(1, 30), min_size=1, max_size=40))
def test_episodes_match_the_definition(data, sizes):
    ways = data.draw(st.integers(1, len(sizes)), "ways")
    shots = data.draw(st.integers(1, min(sizes)), "shots")
    queries = data.draw(st.integers(0, min(sizes) - shots), "queries")
    seed = data.draw(st.integers(-(2**63), 2**64), "seed")
    start = data.draw(st.integers(0, 10**12), "start")
    count = data.draw(st.integers(1, 6), "count")
    sampler = EpisodeSampler(torch.tensor(sizes), ways, shots, queries, seed)
    episodes = sampler.sample(start, count)
    assert episodes.positions.shape == (count, ways, shots + queries)
    assert_valid_episodes(episodes, torch.tensor(sizes), shots)
    # random access: each episode alone equals its row of the batch
    last = sampler.sample(start + count - 1)
    assert torch.equal(last.classes[0], episodes.classes[-1])
    assert torch.equal(last.positions[0], episodes.positions[-1])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=40),
    shots=st.integers(1, 31),
    queries=st.integers(0, 31),
)
def test_too_few_images_is_refused_naming_the_smallest_class(sizes, shots, queries):
    if shots + queries <= min(sizes):
        EpisodeSampler(torch.tensor(sizes), 1, shots, queries)
        return
    smallest = sizes.index(min(sizes))
    with pytest.raises(ValueError, match=f"class {smallest} has only {min(sizes)}"):
        EpisodeSampler(torch.tensor(sizes), 1, shots, queries)


def test_episode_i_is_the_same_whatever_came_before():
    sampler = EpisodeSampler(torch.full((50,), 12), ways=5, shots=2, queries=3, seed=4)
    forward = sampler.sample(0, 40)
    backward = [sampler.sample(i) for i in reversed(range(40))][::-1]
    shuffled = EpisodeSampler(torch.full((50,), 12), 5, 2, 3, seed=4)
    for i in torch.randperm(40, generator=torch.Generator().manual_seed(0)).tolist():
        one = shuffled.sample(i)
        assert torch.equal(one.classes[0], forward.classes[i])
        assert torch.equal(one.positions[0], forward.positions[i])
    assert torch.equal(torch.cat([b.classes for b in backward]), forward.classes)
    assert torch.equal(sampler.sample(10, 7).positions, forward.positions[10:17])


def test_different_seeds_and_episodes_differ():
    sizes = torch.full((100,), 20)
    a = EpisodeSampler(sizes, 5, 1, 15, seed=0).sample(0, 8)
    b = EpisodeSampler(sizes, 5, 1, 15, seed=1).sample(0, 8)
    assert not torch.equal(a.classes, b.classes)
    assert not torch.equal(a.positions, b.positions)
    assert len({tuple(row) for row in a.classes.tolist()}) == 8


def test_every_episode_has_exactly_shots_plus_queries_images_per_class():
    sizes = torch.tensor([7, 9, 30, 8, 12, 7])
    episodes = EpisodeSampler(sizes, ways=4, shots=3, queries=4, seed=2).sample(0, 200)
    assert episodes.positions.shape == (200, 4, 7)
    assert_valid_episodes(episodes, sizes, shots=3)


def test_classes_labels_and_positions_are_uniform():
    # each class equally likely in each label slot, each position equally likely in each rank
    classes, size, episodes = 8, 6, 4800
    sampler = EpisodeSampler(torch.full((classes,), size), ways=3, shots=1, queries=1, seed=9)
    drawn = sampler.sample(0, episodes)
    for slot in range(3):
        counts = torch.bincount(drawn.classes[:, slot], minlength=classes).double()
        expected = episodes / classes
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < (classes - 1) + 5 * math.sqrt(2 * (classes - 1))
    for rank in range(2):
        counts = torch.bincount(drawn.positions[:, :, rank].reshape(-1), minlength=size).double()
        expected = 3 * episodes / size
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < (size - 1) + 5 * math.sqrt(2 * (size - 1))


def test_unequal_classes_use_all_their_images_and_no_more():
    sizes = torch.tensor([2, 10, 3])
    drawn = EpisodeSampler(sizes, ways=3, shots=1, queries=1, seed=0).sample(0, 3000)
    for c, size in enumerate(sizes.tolist()):
        positions = drawn.positions[drawn.classes == c]
        assert set(positions.reshape(-1).tolist()) == set(range(size))


@pytest.mark.parametrize(
    ("ways", "shots", "queries", "message"),
    [
        (0, 1, 1, "ways must be a positive integer, got 0"),
        (-2, 1, 1, "ways must be a positive integer, got -2"),
        (5, 0, 1, "shots must be a positive integer, got 0"),
        (5, 1, -1, "queries must be a non-negative integer, got -1"),
        (7, 1, 1, "ways=7 but only 6 classes are available; lower ways to at most 6"),
    ],
)
def test_bad_sampler_arguments_say_what_to_change(ways, shots, queries, message):
    with pytest.raises(ValueError, match=message):
        EpisodeSampler(torch.full((6,), 20), ways, shots, queries)


def test_too_many_images_per_class_names_the_class_and_its_size():
    sizes = torch.tensor([20, 20, 11, 20])
    with pytest.raises(ValueError, match=r"class 'b/rot180' \(index 2\) has only 11; lower shots"):
        EpisodeSampler(sizes, 2, 5, 7, class_names=["a", "a/rot090", "b/rot180", "c"])
    with pytest.raises(ValueError, match=r"= 12 images per class, but class 2 has only 11"):
        EpisodeSampler(sizes, 2, 5, 7)


def test_bad_sample_arguments():
    sampler = EpisodeSampler(torch.full((6,), 20), 2, 1, 1)
    with pytest.raises(ValueError, match="count must be a positive integer"):
        sampler.sample(0, 0)
    with pytest.raises(ValueError, match="episode indices start at 0"):
        sampler.sample(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_gpu_draws_the_same_episodes():
    sizes = torch.tensor([20] * 30 + [7] * 10)
    on_cpu = EpisodeSampler(sizes, 5, 2, 5, seed=3).sample(0, 64)
    on_gpu = EpisodeSampler(sizes.cuda(), 5, 2, 5, seed=3).sample(0, 64)
    assert on_gpu.classes.is_cuda
    assert torch.equal(on_gpu.classes.cpu(), on_cpu.classes)
    assert torch.equal(on_gpu.positions.cpu(), on_cpu.positions)
