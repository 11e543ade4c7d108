"""Rollouts: episodes of many tasks sampled at once, and their advantages.

:func:`collect` steps a :class:`~fastmeta.rl.env.BatchEnv` with a batched policy: one policy
evaluation per time step for all tasks and episodes. Exploration noise is drawn up front, one
generator per task seeded by ``(seed, task index)``, and each episode's reset gets its own seed
``(seed, task index, episode)`` (see :mod:`fastmeta.rl.seeding`), so the episodes of a task do
not depend on the other tasks in the batch nor on the process that samples them.
:class:`Sampler` adds the advantages the algorithms use: GAE over the linear feature
baseline, normalised per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from fastmeta.rl import baseline
from fastmeta.rl.advantages import discounted_returns, gae, normalize_per_task
from fastmeta.rl.env import BatchEnv
from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.seeding import generator, seed_of
from fastmeta.rl.tasks import Tasks

Act = Callable[[Tensor], Gaussian]
"""``act(observations [B, E, obs]) -> Gaussian``: the batched policy at one time step."""


@dataclass(frozen=True)
class Episodes:
    """``E`` episodes of each of ``B`` tasks, ``T`` steps each (the horizon).

    ``mask [B, E, T]`` is 1 for the steps taken (0 after an episode ended; the losses also read
    it as a weight per step). ``log_probs`` are the sampling policy's, without a graph.
    ``advantages`` are set by :meth:`Sampler.process`.
    """

    observations: Tensor  # [B, E, T, obs]
    actions: Tensor  # [B, E, T, act]
    rewards: Tensor  # [B, E, T]
    mask: Tensor  # [B, E, T]
    log_probs: Tensor  # [B, E, T]
    advantages: Tensor | None = None  # [B, E, T]

    def returns(self) -> Tensor:
        """Undiscounted return of each episode, ``[B, E]``."""
        return (self.rewards * self.mask).sum(-1)

    def task_returns(self) -> Tensor:
        """Mean return of each task's episodes, ``[B]``."""
        return self.returns().mean(-1)

    def take(self, tasks: Sequence[int]) -> Episodes:
        """The episodes of the tasks at positions ``tasks``, in that order."""
        index = torch.tensor(list(tasks), dtype=torch.long, device=self.mask.device)

        def part(t: Tensor) -> Tensor:
            return t.index_select(0, index)

        advantages = None if self.advantages is None else part(self.advantages)
        return Episodes(
            part(self.observations),
            part(self.actions),
            part(self.rewards),
            part(self.mask),
            part(self.log_probs),
            advantages,
        )


def exploration_noise(tasks: Tasks, episodes: int, horizon: int, dim: int, seed: int) -> Tensor:
    """Standard normal noise ``[B, E, T, act]``, task ``b``'s from generator ``(seed, index)``."""
    return torch.stack(
        [
            torch.randn(episodes, horizon, dim, generator=generator(seed_of(seed, i)))
            for i in tasks.indices
        ]
    )


def reset_seeds(tasks: Tasks, episodes: int, seed: int) -> list[list[int]]:
    """The reset seed of episode ``e`` of each task: ``(seed, task index, e)``."""
    return [[seed_of(seed, i, e) for e in range(episodes)] for i in tasks.indices]


@torch.no_grad()
def collect(env: BatchEnv, act: Act, tasks: Tasks, episodes: int, seed: int) -> Episodes:
    """``episodes`` episodes of every task of ``tasks`` under ``act`` (module docstring)."""
    device = tasks.params.device
    horizon = env.horizon
    noise = exploration_noise(tasks, episodes, horizon, env.action_dim, seed).to(device)
    observation = env.reset(tasks.params, reset_seeds(tasks, episodes, seed))
    alive = torch.ones(observation.shape[:2], dtype=torch.bool, device=device)
    steps: list[tuple[Tensor, ...]] = []
    for t in range(horizon):
        policy = act(observation)
        action = policy.sample(noise[:, :, t].to(policy.mean.dtype))
        step = env.step(action)
        steps.append((observation, action, step.rewards, alive.clone(), policy.log_prob(action)))
        alive &= ~step.done.to(device)
        observation = step.observations
    obs, actions, rewards, mask, log_probs = (
        torch.stack(parts, dim=2) for parts in zip(*steps, strict=True)
    )
    dtype = rewards.dtype
    return Episodes(obs.to(dtype), actions.to(dtype), rewards * mask, mask.to(dtype), log_probs)


@dataclass(frozen=True)
class Sampler:
    """Collects ``episodes`` per task from ``env`` and computes their advantages: GAE
    (``gamma``, ``gae_lambda``) over the linear feature baseline (or none), normalised per task
    when ``normalize``."""

    env: BatchEnv
    episodes: int
    gamma: float = 0.99
    gae_lambda: float = 1.0
    linear_baseline: bool = True
    normalize: bool = True

    def sample(self, act: Act, tasks: Tasks, seed: int) -> Episodes:
        """Episodes of ``tasks`` under ``act`` with their advantages."""
        return self.process(collect(self.env, act, tasks, self.episodes, seed))

    def process(self, episodes: Episodes) -> Episodes:
        """``episodes`` with their advantages (see the class docstring)."""
        e = episodes
        if self.linear_baseline:
            returns = discounted_returns(e.rewards, e.mask, self.gamma)
            values = baseline.fit_predict(e.observations, returns, e.mask)
        else:
            values = torch.zeros_like(e.rewards)
        advantages = gae(e.rewards, values, e.mask, self.gamma, self.gae_lambda)
        if self.normalize:
            advantages = normalize_per_task(advantages, e.mask)
        return replace(e, advantages=advantages)
