"""HalfCheetah and Ant task families on gymnasium's MuJoCo environments (``*-v5``), with the
per-task reward of the papers, set through the ``task`` attribute of :class:`TaskReward`.

- ``halfcheetah-vel`` (Finn et al. 2017): ``-|v_x - v_goal| - 0.05 |a|^2``, the goal velocity
  uniform in [0, 2] (ProMP used [0, 3]);
- ``halfcheetah-dir`` (Finn et al. 2017; Rothfuss et al. 2019): ``d v_x - 0.05 |a|^2``,
  ``d`` = +1 or -1;
- ``ant-dir``: ``d v_x`` plus gymnasium's Ant control, contact and survival terms (weights 0.5,
  5e-4 and 1, those of ProMP's ``AntRandDirec``), ``d`` = +1 or -1;
- ``ant-goal-direction`` (ProMP's ``AntRandDirec2D``): ``d . (v_x, v_y)`` plus the same terms,
  ``d`` uniform on the unit circle.

The velocities are gymnasium's ``x_velocity`` / ``y_velocity`` (torso displacement over one
control step), the quantities of the papers' code. Ant keeps gymnasium's healthy-height
termination.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

HORIZON = 200
CHEETAH_CONTROL = 0.05
Array = np.ndarray[Any, Any]
Reward = Callable[[Array, Array, dict[str, Any]], float]


def _cheetah_velocity(task: Array, action: Array, info: dict[str, Any]) -> float:
    control = CHEETAH_CONTROL * float(np.square(action).sum())
    return -abs(float(info["x_velocity"]) - float(task[0])) - control


def _cheetah_direction(task: Array, action: Array, info: dict[str, Any]) -> float:
    return float(task[0]) * float(info["x_velocity"]) - CHEETAH_CONTROL * float(
        np.square(action).sum()
    )


def _ant_terms(info: dict[str, Any]) -> float:
    return float(info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"])


def _ant_direction(task: Array, action: Array, info: dict[str, Any]) -> float:
    return float(task[0]) * float(info["x_velocity"]) + _ant_terms(info)


def _ant_goal_direction(task: Array, action: Array, info: dict[str, Any]) -> float:
    velocity = np.array([info["x_velocity"], info["y_velocity"]], dtype=np.float64)
    return float(np.dot(task[:2], velocity)) + _ant_terms(info)


FAMILIES: dict[str, tuple[str, Reward]] = {
    "halfcheetah-vel": ("HalfCheetah-v5", _cheetah_velocity),
    "halfcheetah-dir": ("HalfCheetah-v5", _cheetah_direction),
    "ant-dir": ("Ant-v5", _ant_direction),
    "ant-goal-direction": ("Ant-v5", _ant_goal_direction),
}


class TaskReward(gymnasium.Wrapper[Array, Array, Array, Array]):
    """``env`` with its reward replaced by ``reward(task, action, info)``; the original
    reward stays in ``info["env_reward"]``."""

    def __init__(self, env: gymnasium.Env[Array, Array], reward: Reward, dim: int) -> None:
        super().__init__(env)
        self.reward = reward
        self.task = np.zeros(dim)

    def step(self, action: Array) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "env_reward": env_reward}
        return obs, self.reward(self.task, action, info), terminated, truncated, info


def maker(family: str, **make_kwargs: Any) -> Callable[[], gymnasium.Env[Array, Array]]:
    """A function that builds one environment of ``family`` (``make_kwargs`` go to
    ``gymnasium.make``, e.g. ``render_mode="rgb_array"``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown locomotion family {family!r}; choose one of {list(FAMILIES)}")
    env_id, reward = FAMILIES[family]
    dim = 2 if family == "ant-goal-direction" else 1

    def make() -> gymnasium.Env[Array, Array]:
        env = gymnasium.make(env_id, disable_env_checker=True, **make_kwargs)
        return TaskReward(env, reward, dim)

    return make
