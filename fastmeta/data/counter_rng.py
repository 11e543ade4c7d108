"""Counter-based random draws: draw ``j`` of episode ``i`` is a pure function of (seed, i, j).

A stateful generator makes episode ``i`` depend on every draw before it; here each episode gets
a 32-bit key (SplitMix64 of the seed and the episode index, in exact Python integers) and its
``j``-th draw is a fixed bijective integer hash of (key, j), computed with tensor ops on the
device. So any episode can be drawn alone, in any order or batch size, with the same result on
the CPU and the GPU, and a stream's position is just an integer.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN64 = 0x9E3779B97F4A7C15
# Multiplier of the 32-bit mixer (Thomas Mueller's integer hash). It is below 2**27, so the
# products of 32-bit values stay exact in int64 tensors.
_MIX_MULTIPLIER = 0x045D9F3B
_TABLE_SALT = 0x2545F491


def _splitmix64(z: int) -> int:
    """The SplitMix64 finalizer (Steele, Lea and Flood 2014) on a 64-bit Python integer."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(seed: int, index: int) -> int:
    """A well-mixed 64-bit integer for item ``index`` of stream ``seed`` (to seed generators)."""
    if index < 0:
        raise ValueError(f"episode and task indices start at 0; got {index}")
    return _splitmix64((_splitmix64(seed & _MASK64) + (index + 1) * _GOLDEN64) & _MASK64)


def episode_keys(seed: int, start: int, count: int, device: torch.device | str) -> Tensor:
    """``[count]`` int64 32-bit keys of episodes ``start .. start+count-1`` of stream ``seed``.

    Key ``i`` folds ``derive_seed(seed, i)`` to 32 bits.
    """
    if start < 0:
        raise ValueError(f"episode and task indices start at 0; got {start}")
    base = _splitmix64(seed & _MASK64)
    keys = []
    for index in range(start + 1, start + count + 1):
        mixed = _splitmix64((base + index * _GOLDEN64) & _MASK64)
        keys.append((mixed ^ (mixed >> 32)) & MASK32)
    return torch.tensor(keys, dtype=torch.int64, device=device)


def mix32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer hash of int64 tensors holding values in ``0 .. 2**32-1``."""
    x = x ^ (x >> 16)
    x.mul_(_MIX_MULTIPLIER).bitwise_and_(MASK32)
    x.bitwise_xor_(x >> 16)
    x.mul_(_MIX_MULTIPLIER).bitwise_and_(MASK32)
    return x.bitwise_xor_(x >> 16)


@lru_cache(maxsize=32)
def _draw_table(length: int, device: torch.device) -> Tensor:
    """Distinct hashed draw numbers ``0 .. length-1`` (cached: every batch reuses them)."""
    return mix32(torch.arange(length, dtype=torch.int64, device=device) + _TABLE_SALT)


def draw_bits(keys: Tensor, offset: int, count: int) -> Tensor:
    """``[len(keys), count]`` 32-bit draws ``offset .. offset+count-1`` of each key.

    Within one key the draws are distinct (the hash is a bijection), so they can serve as sort
    keys for a shuffle without ties.
    """
    table = _draw_table(offset + count, keys.device)[offset:]
    return mix32(keys.unsqueeze(1) ^ table)


def below(bits: Tensor, bound: int | Tensor) -> Tensor:
    """Map 32-bit draws to integers uniform in ``0 .. bound-1`` (Lemire's multiply-shift)."""
    return (bits * bound) >> 32


def unit_interval(bits: Tensor) -> Tensor:
    """Map 32-bit draws to float64 values uniform in ``[0, 1)``."""
    return bits.double() / 2.0**32


def distinct_below(bits: Tensor, population: int) -> Tensor:
    """Distinct integers in ``0 .. population-1``, a uniformly random ordered choice per row.

    ``bits`` is ``[rows, 2, m]`` (two independent draws per pick; requires ``m <= population``).
    Fast path: the first ``m`` draws taken as independent uniform integers, kept where they
    happen to be distinct (then the ordered choice is uniform). Rows with a repeat are redrawn
    from the second ``m`` draws by sequential sampling without replacement, where pick ``j`` is
    the ``r_j``-th value not yet taken. Each row depends only on its own draws.
    """
    picks = bits.shape[-1]
    first = below(bits[:, 0], population)
    repeats = (first.unsqueeze(2) == first.unsqueeze(1)).sum((1, 2)) > picks
    if not bool(repeats.any()):
        return first
    rows = repeats.nonzero().squeeze(1)
    first[rows] = _sequential_choice(bits[rows, 1], population)
    return first


def _sequential_choice(bits: Tensor, population: int) -> Tensor:
    """Sampling without replacement: pick ``j`` is the ``r_j``-th value not yet taken.

    ``r_j`` is uniform in ``0 .. population-j-1``. With the taken values sorted
    ``s_0 < s_1 < ...``, the ``r``-th free value is ``r + #{t : s_t - t <= r}``.
    """
    rows, picks = bits.shape
    taken = bits.new_empty(rows, 0)
    chosen = []
    for j in range(picks):
        r = below(bits[:, j], population - j)
        shift = taken - torch.arange(j, device=bits.device)
        value = r + (shift <= r.unsqueeze(1)).sum(1)
        chosen.append(value)
        taken = torch.cat([taken, value.unsqueeze(1)], 1).sort(1).values
    return torch.stack(chosen, 1)


def shuffled_prefix(bits: Tensor, sizes: Tensor | None, count: int) -> Tensor:
    """The first ``count`` entries of a uniformly random permutation of ``0 .. size-1`` per row.

    ``bits [..., P]`` are distinct sort keys for positions ``0 .. P-1``; positions at or beyond a
    row's size (``sizes [...]``; None when every row has all ``P``) are pushed past the valid ones.
    """
    if sizes is not None:
        positions = torch.arange(bits.shape[-1], device=bits.device)
        bits = torch.where(positions < sizes.unsqueeze(-1), bits, bits + (1 << 32))
    return bits.topk(count, dim=-1, largest=False, sorted=True).indices
