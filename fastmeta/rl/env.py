"""The batched environment every rollout steps: many tasks, many episodes each, at once.

An environment of this protocol holds ``B`` tasks with ``E`` episodes each and steps them
together: observations, actions and rewards are tensors ``[B, E, ...]``. The 2D navigation
environment implements it in pure torch (:mod:`fastmeta.rl.navigation`); gymnasium
environments (MuJoCo, Meta-World) are run through gymnasium's vector API by
:class:`fastmeta.rl.vector.GymBatchEnv`. Episodes end at ``horizon`` steps or earlier when
the environment says ``done``; the steps after that are masked by the rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from torch import Tensor


class Step(NamedTuple):
    """What one step returns: observations ``[B, E, obs]``, rewards ``[B, E]`` and ``done``
    ``[B, E]`` (bool: the episode ended at this step)."""

    observations: Tensor
    rewards: Tensor
    done: Tensor


class BatchEnv(Protocol):
    """``B`` tasks x ``E`` episodes stepped together (see the module docstring)."""

    observation_dim: int
    action_dim: int
    horizon: int

    def reset(self, tasks: Tensor, seeds: Sequence[Sequence[int]]) -> Tensor:
        """Start one episode per ``seeds[b][e]`` of each task ``tasks[b]``; observations
        ``[B, E, obs]``. Each episode's start state depends on its seed alone."""
        ...

    def step(self, actions: Tensor) -> Step:
        """Apply ``actions [B, E, act]`` (the policy's raw output; the environment clips)."""
        ...

    def close(self) -> None:
        """Release what the environment holds (simulators, renderers)."""
        ...
