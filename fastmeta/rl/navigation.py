"""2D navigation (Finn et al. 2017, sec. 5.3) as a batched pure-torch environment.

A point agent starts at the origin and moves towards a goal drawn uniformly from the square
``[-0.5, 0.5]^2``; its observation is its position, its action a displacement, its reward the
negative distance to the goal after the move; an episode ends after 100 steps, or once both
coordinates are within 0.01 of the goal. Those are the dynamics of the paper's reference code
(``point_env_randgoal.py`` of cbfinn/maml_rl; the paper's text says "squared distance", the
code uses the distance). The reference code ran the policy through rllab's ``normalize``,
which maps actions in ``[-1, 1]`` to the action box ``[-0.1, 0.1]^2``; so does this
environment: actions are clipped to ``[-1, 1]`` and scaled by :data:`MAX_STEP`.

All tasks and episodes step at once on the device of the goals (CPU or GPU), with no Python
loop over them; the start state is fixed, so the reset seeds are not needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fastmeta.rl.env import Step
from fastmeta.rl.tasks import TaskDistribution, uniform_box

HORIZON = 100
MAX_STEP = 0.1
GOAL_TOLERANCE = 0.01


def goal_distribution() -> TaskDistribution:
    """Goals uniform in the square ``[-0.5, 0.5]^2``."""
    return uniform_box(-0.5, 0.5, 2)


class Navigation2D:
    """The batched environment (:class:`fastmeta.rl.env.BatchEnv`) of the module docstring."""

    observation_dim = 2
    action_dim = 2

    def __init__(self, horizon: int = HORIZON, dtype: torch.dtype | None = None) -> None:
        if horizon < 1:
            raise ValueError(f"an episode needs at least one step, got horizon={horizon}")
        self.horizon = horizon
        self.dtype = dtype or torch.get_default_dtype()
        self.goals = torch.zeros(0, 1, 2)
        self.position = torch.zeros(0, 0, 2)

    def reset(self, tasks: Tensor, seeds: Sequence[Sequence[int]]) -> Tensor:
        episodes = len(seeds[0])
        self.goals = tasks.to(self.dtype).reshape(-1, 1, 2)
        self.position = torch.zeros(
            self.goals.shape[0], episodes, 2, dtype=self.dtype, device=tasks.device
        )
        return self.position.clone()

    def step(self, actions: Tensor) -> Step:
        move = MAX_STEP * actions.to(self.dtype).clamp(-1.0, 1.0)
        self.position = self.position + move
        offset = self.position - self.goals
        rewards = -offset.norm(dim=-1)
        done = (offset.abs() < GOAL_TOLERANCE).all(dim=-1)
        return Step(self.position.clone(), rewards, done)

    def close(self) -> None:
        """Nothing to release."""
