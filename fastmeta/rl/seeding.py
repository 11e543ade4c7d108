"""Seeds of every random draw of a meta-RL run, as pure functions of the run's seed.

Task ``i`` of a stream, the exploration noise of task ``i`` at iteration ``k`` and the reset of
its episode ``e`` each get their own seed, folded from the run's seed and those indices with
:func:`fastmeta.data.counter_rng.derive_seed`. Nothing depends on what was drawn before, on the
batch size or on how tasks are split across processes, so a resumed or distributed run draws
exactly what an uninterrupted single-process run draws.
"""

from __future__ import annotations

import torch

from fastmeta.data.counter_rng import derive_seed

_SEED_BITS = (1 << 63) - 1


def seed_of(seed: int, *indices: int) -> int:
    """A non-negative 63-bit seed for item ``indices`` (e.g. iteration, phase, task) of ``seed``."""
    value = seed
    for index in indices:
        value = derive_seed(value, index)
    return value & _SEED_BITS


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` started from ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)
