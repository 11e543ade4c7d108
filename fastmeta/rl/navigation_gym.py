"""2D navigation as a gymnasium environment: the dynamics of :mod:`fastmeta.rl.navigation`
one episode at a time, for code that expects a ``gymnasium.Env`` (and, through
:class:`fastmeta.rl.vector.GymBatchEnv`, gymnasium's vector API).

The action box is ``[-0.1, 0.1]^2`` (the reference code's); the goal is the ``task``
attribute, set before ``reset``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from fastmeta.rl.navigation import GOAL_TOLERANCE, MAX_STEP

Array = np.ndarray[Any, Any]


class NavigationEnv(gymnasium.Env[Array, Array]):
    """A point moving towards the goal ``task``; reward: minus the distance after the move."""

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gymnasium.spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float64)
        self.task = np.zeros(2)
        self.position = np.zeros(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        super().reset(seed=seed)
        self.position = np.zeros(2)
        return self.position.copy(), {}

    def step(self, action: Array) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        self.position = self.position + np.clip(action, -MAX_STEP, MAX_STEP)
        offset = self.position - np.asarray(self.task, dtype=np.float64)
        done = bool(np.all(np.abs(offset) < GOAL_TOLERANCE))
        return self.position.copy(), float(-np.linalg.norm(offset)), done, False, {}


def make_navigation() -> gymnasium.Env[Array, Array]:
    return NavigationEnv()
