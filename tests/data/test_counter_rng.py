"""Counter-based draws: exact hash arithmetic, random access, and uniform choices."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmeta.data.counter_rng import (
    _sequential_choice,
    below,
    derive_seed,
    distinct_below,
    draw_bits,
    episode_keys,
    mix32,
    shuffled_prefix,
)


def reference_mix32(x: int) -> int:
    """The same hash in plain unsigned 32-bit arithmetic."""
    x = ((x >> 16) ^ x) * 0x045D9F3B % 2**32
    x = ((x >> 16) ^ x) * 0x045D9F3B % 2**32
    return (x >> 16) ^ x


def test_mix32_matches_plain_integer_arithmetic_over_the_whole_range():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]
    values += torch.randint(0, 2**32, (1000,), generator=torch.Generator().manual_seed(1)).tolist()
    hashed = mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert hashed == [reference_mix32(v) for v in values]
    assert all(0 <= h < 2**32 for h in hashed)


def test_mix32_is_a_bijection_on_a_block():
    block = torch.arange(2**16, dtype=torch.int64) * 65537
    assert mix32(block).unique().numel() == block.numel()


def test_episode_keys_are_random_access_and_seed_dependent():
    together = episode_keys(7, 100, 50, "cpu")
    alone = torch.cat([episode_keys(7, i, 1, "cpu") for i in reversed(range(100, 150))]).flip(0)
    assert torch.equal(together, alone)
    assert together.unique().numel() == 50
    assert not torch.equal(together, episode_keys(8, 100, 50, "cpu"))
    folded = [(d ^ (d >> 32)) & 0xFFFFFFFF for d in (derive_seed(7, i) for i in range(100, 150))]
    assert together.tolist() == folded


def test_draws_within_a_key_are_distinct_and_offsets_address_the_same_stream():
    keys = episode_keys(0, 0, 4, "cpu")
    bits = draw_bits(keys, 0, 3000)
    assert all(row.unique().numel() == 3000 for row in bits)
    assert torch.equal(draw_bits(keys, 1000, 500), bits[:, 1000:1500])


def test_below_covers_its_range_evenly():
    bits = draw_bits(episode_keys(3, 0, 1, "cpu"), 0, 70000)[0]
    values = below(bits, 7)
    assert int(values.min()) == 0 and int(values.max()) == 6
    counts = torch.bincount(values, minlength=7).double()
    expected = 10000.0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 25.0  # 6 degrees of freedom: p < 0.001 beyond 22.5


def nth_free(taken: list[int], r: int) -> int:
    """The r-th (0-based) value not in ``taken``, by counting."""
    return next(itertools.islice((v for v in itertools.count() if v not in taken), r, None))


@settings(max_examples=60, deadline=None)
@given(
    population=st.integers(1, 40),
    picks=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_sequential_choice_takes_the_rth_free_value(population, picks, seed):
    picks = min(picks, population)
    bits = draw_bits(episode_keys(seed, 0, 3, "cpu"), 0, picks)
    chosen = _sequential_choice(bits, population)
    for row_bits, row in zip(bits.tolist(), chosen.tolist(), strict=True):
        taken: list[int] = []
        for j, b in enumerate(row_bits):
            taken.append(nth_free(taken, (b * (population - j)) >> 32))
        assert row == taken


@settings(max_examples=60, deadline=None)
@given(population=st.integers(1, 30), picks=st.integers(1, 30), seed=st.integers(0, 2**32))
def test_distinct_below_gives_distinct_values_in_range(population, picks, seed):
    picks = min(picks, population)
    bits = draw_bits(episode_keys(seed, 0, 16, "cpu"), 0, 2 * picks).reshape(16, 2, picks)
    chosen = distinct_below(bits, population)
    assert chosen.shape == (16, picks)
    assert int(chosen.min()) >= 0 and int(chosen.max()) < population
    assert all(row.unique().numel() == picks for row in chosen)


def ordered_pair_counts(population: int, rows: int, seed: int) -> torch.Tensor:
    bits = draw_bits(episode_keys(seed, 0, rows, "cpu"), 0, 4).reshape(rows, 2, 2)
    chosen = distinct_below(bits, population)
    return torch.bincount(chosen[:, 0] * population + chosen[:, 1], minlength=population**2)


def test_distinct_below_is_uniform_over_ordered_choices_on_both_paths():
    # 3 of 3 classes nearly always repeats (sequential path); 2 of 6 mostly does not (fast path).
    for population in (3, 6):
        rows = 300 * population * (population - 1)
        counts = ordered_pair_counts(population, rows, seed=11).double()
        counts = counts.view(population, population)
        assert counts.diagonal().sum() == 0
        off = counts[~torch.eye(population, dtype=torch.bool)]
        chi2 = float(((off - 300.0) ** 2 / 300.0).sum())
        dof = off.numel() - 1
        assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_shuffled_prefix_respects_sizes_and_is_uniform():
    keys = draw_bits(episode_keys(5, 0, 6000, "cpu"), 0, 8)
    sizes = torch.full((6000,), 5)
    picks = shuffled_prefix(keys, sizes, 2)
    assert int(picks.max()) < 5
    assert bool((picks[:, 0] != picks[:, 1]).all())
    counts = torch.bincount(picks[:, 0] * 5 + picks[:, 1], minlength=25).view(5, 5).double()
    off = counts[~torch.eye(5, dtype=torch.bool)]
    chi2 = float(((off - 300.0) ** 2 / 300.0).sum())
    assert chi2 < 19 + 5 * math.sqrt(38)
