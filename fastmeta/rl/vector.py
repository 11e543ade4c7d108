"""Gymnasium environments as a :class:`~fastmeta.rl.env.BatchEnv`, through gymnasium's vector
API (``gymnasium.vector.SyncVectorEnv``).

``B`` tasks x ``E`` episodes are ``B * E`` sub-environments of one vector environment (rebuilt
only when that number changes); task ``b``'s parameters are set on its ``E`` sub-environments
(their ``task`` attribute) and each sub-environment is reset with its episode's own seed. The
policy's actions in ``[-1, 1]`` are mapped onto the action box and clipped, as rllab's
``normalize`` did in the MAML and ProMP experiments. Sub-environments that end early reset
within the same step (``SAME_STEP``); the rollout masks everything after their end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor

from fastmeta.rl.env import Step

Make = Callable[[], gymnasium.Env[Any, Any]]


class GymBatchEnv:
    """``make()`` sub-environments stepped as ``[B, E]`` batches on ``device`` tensors."""

    def __init__(self, make: Make, horizon: int, device: torch.device | str = "cpu") -> None:
        self.make = make
        self.horizon = horizon
        self.device = torch.device(device)
        probe = make()
        obs_space, act_space = probe.observation_space, probe.action_space
        probe.close()
        if not isinstance(obs_space, gymnasium.spaces.Box) or not isinstance(
            act_space, gymnasium.spaces.Box
        ):
            raise ValueError(
                "meta-RL here needs Box observations and actions (a Gaussian policy); got "
                f"{obs_space} and {act_space}"
            )
        self.observation_dim = int(np.prod(obs_space.shape))
        self.action_dim = int(np.prod(act_space.shape))
        self.low = act_space.low.reshape(-1).astype(np.float64)
        self.high = act_space.high.reshape(-1).astype(np.float64)
        self.vector: gymnasium.vector.SyncVectorEnv | None = None
        self.shape = (0, 0)

    def _resize(self, count: int) -> gymnasium.vector.SyncVectorEnv:
        if self.vector is None or self.vector.num_envs != count:
            self.close()
            self.vector = gymnasium.vector.SyncVectorEnv(
                [self.make] * count, autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
            )
        return self.vector

    def reset(self, tasks: Tensor, seeds: Sequence[Sequence[int]]) -> Tensor:
        tasks_n, episodes = len(seeds), len(seeds[0])
        vector = self._resize(tasks_n * episodes)
        self.shape = (tasks_n, episodes)
        params = tasks.detach().cpu().double().numpy()
        vector.set_attr("task", [params[b] for b in range(tasks_n) for _ in range(episodes)])
        obs, _ = vector.reset(seed=[int(s) for row in seeds for s in row])
        return self._tensor(obs).reshape(tasks_n, episodes, -1)

    def step(self, actions: Tensor) -> Step:
        if self.vector is None:
            raise RuntimeError("reset the environment before stepping it")
        a = actions.detach().cpu().double().numpy().reshape(-1, self.action_dim)
        a = self.low + (np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)
        obs, rewards, terminated, truncated, _ = self.vector.step(a)
        shape = self.shape
        done = torch.as_tensor(np.logical_or(terminated, truncated), device=self.device)
        return Step(
            self._tensor(obs).reshape(*shape, -1),
            self._tensor(rewards).reshape(shape),
            done.reshape(shape),
        )

    def _tensor(self, array: np.ndarray[Any, Any]) -> Tensor:
        return torch.as_tensor(
            np.asarray(array), dtype=torch.get_default_dtype(), device=self.device
        )

    def close(self) -> None:
        if self.vector is not None:
            self.vector.close()
            self.vector = None
