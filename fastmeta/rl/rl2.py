"""RL² (Duan et al. 2016; Wang et al. 2016): a recurrent policy that adapts by its memory,
trained with PPO (Schulman et al. 2017) across the episodes of one task.

A trial is ``trial_episodes`` consecutive episodes of one task; the GRU state, the previous
action and reward carry over from one episode to the next (a flag marks each episode's first
step), so the policy can learn to explore in the first episode and exploit in the later ones.
There is no inner gradient loop: adaptation is the recurrence, so this method does not use
:func:`fastmeta.functional.inner.descend`. Masked steps (an episode that ended early) freeze
the state, and the update replays the stored inputs step by step, so the log-probabilities it
recomputes are the rollout's exactly at the first epoch. The advantages are GAE over the
whole trial with the policy's value head; the update is PPO with full-batch epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.rl.advantages import gae, normalize_per_task
from fastmeta.rl.env import BatchEnv
from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.objectives import per_task_mean
from fastmeta.rl.policies import RecurrentPolicy
from fastmeta.rl.rollout import exploration_noise
from fastmeta.rl.seeding import seed_of
from fastmeta.rl.sharding import Share
from fastmeta.rl.tasks import Tasks


@dataclass(frozen=True)
class RL2Settings:
    """Episodes per trial, PPO's epochs, clip range, Adam rate and loss weights, GAE."""

    trial_episodes: int = 2
    epochs: int = 5
    clip: float = 0.2
    lr: float = 1e-3
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    gamma: float = 0.99
    gae_lambda: float = 0.95


@dataclass(frozen=True)
class Trials:
    """``R`` trials of each of ``B`` tasks, ``L = K * T`` steps each, as ``[B, R, L, ...]``."""

    inputs: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    log_probs: Tensor
    values: Tensor
    episode_returns: Tensor  # [B, R, K]


class RL2:
    """RL² with PPO (module docstring); ``trials`` per task per meta-step."""

    def __init__(
        self, policy: RecurrentPolicy, env: BatchEnv, settings: RL2Settings, trials: int
    ) -> None:
        self.policy = policy
        self.env = env
        self.settings = settings
        self.trials = trials
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=settings.lr)

    @torch.no_grad()
    def collect(self, tasks: Tasks, trials: int, episodes: int, seed: int) -> Trials:
        """``trials`` trials of ``episodes`` episodes of each task; episode ``k`` of trial
        ``r`` of task ``i`` resets with seed ``(seed, k, i, r)`` and its noise comes from
        ``(seed, k, i)``."""
        env, policy = self.env, self.policy
        tasks_n, horizon = len(tasks), env.horizon
        device = tasks.params.device
        state: Tensor | None = None
        prev_action = prev_reward = None
        record: list[tuple[Tensor, ...]] = []
        returns = []
        for k in range(episodes):
            seeds = [[seed_of(seed, k, i, r) for r in range(trials)] for i in tasks.indices]
            obs = env.reset(tasks.params, seeds)
            noise = exploration_noise(tasks, trials, horizon, env.action_dim, seed_of(seed, k))
            noise = noise.to(device, obs.dtype)
            if state is None:
                state = policy.initial_state(tasks_n * trials, obs)
                prev_action = obs.new_zeros(tasks_n, trials, env.action_dim)
                prev_reward = obs.new_zeros(tasks_n, trials)
            assert prev_action is not None and prev_reward is not None
            alive = torch.ones(tasks_n, trials, dtype=torch.bool, device=device)
            episode_return = obs.new_zeros(tasks_n, trials)
            for t in range(horizon):
                first = obs.new_full((tasks_n, trials, 1), float(t == 0))
                inputs = torch.cat([obs, prev_action, prev_reward.unsqueeze(-1), first], -1)
                dist, value, new_state = policy(inputs.reshape(-1, 1, policy.input_dim), state)
                dist = Gaussian(dist.mean.reshape(tasks_n, trials, -1), dist.log_std)
                action = dist.sample(noise[:, :, t])
                step = env.step(action)
                reward = step.rewards.to(obs.dtype) * alive
                record.append(
                    (
                        inputs,
                        action,
                        reward,
                        alive.clone(),
                        dist.log_prob(action),
                        value.reshape(tasks_n, trials),
                    )
                )
                keep = alive.reshape(1, -1, 1)
                state = torch.where(keep, new_state, state)
                prev_action = torch.where(alive.unsqueeze(-1), action, prev_action)
                prev_reward = torch.where(alive, reward, prev_reward)
                episode_return += reward
                alive &= ~step.done.to(device)
                obs = step.observations.to(obs.dtype)
            returns.append(episode_return)
        inputs, actions, rewards, mask, log_probs, values = (
            torch.stack(parts, dim=2) for parts in zip(*record, strict=True)
        )
        return Trials(
            inputs,
            actions,
            rewards,
            mask.to(rewards.dtype),
            log_probs,
            values,
            torch.stack(returns, dim=-1),
        )

    def replay(self, trials: Trials) -> tuple[Gaussian, Tensor]:
        """The current policy's action distributions and values ``[B, R, L]`` on the stored
        inputs, the state frozen on masked steps as in the rollout."""
        b, r, length, _ = trials.inputs.shape
        flat = trials.inputs.reshape(b * r, length, -1)
        alive = trials.mask.reshape(b * r, length) > 0
        state = self.policy.initial_state(b * r, flat)
        means, values = [], []
        for t in range(length):
            dist, value, new_state = self.policy(flat[:, t : t + 1], state)
            state = torch.where(alive[:, t].reshape(1, -1, 1), new_state, state)
            means.append(dist.mean.reshape(b, r, -1))
            values.append(value.reshape(b, r))
        return Gaussian(torch.stack(means, 2), self.policy.log_std), torch.stack(values, 2)

    def loss(self, trials: Trials, advantages: Tensor, targets: Tensor, total: int) -> Tensor:
        """PPO's loss on this process's trials (sum over tasks divided by ``total``)."""
        s = self.settings
        dist, values = self.replay(trials)
        ratio = (dist.log_prob(trials.actions) - trials.log_probs).exp()
        clipped = ratio.clamp(1 - s.clip, 1 + s.clip) * advantages
        policy_term = per_task_mean((ratio * advantages).minimum(clipped), trials.mask)
        value_term = per_task_mean((values - targets).pow(2), trials.mask)
        entropy = dist.entropy().expand_as(trials.mask)
        loss = (
            -policy_term
            + s.value_coef * value_term
            - s.entropy_coef * per_task_mean(entropy, trials.mask)
        )
        return loss.sum() / total

    def meta_step(self, tasks: Tasks, seed: int, share: Share) -> dict[str, float]:
        """Collect trials of this process's ``tasks`` and take PPO's epochs on them."""
        s = self.settings
        trials = self.collect(tasks, self.trials, s.trial_episodes, seed)
        advantages = gae(trials.rewards, trials.values, trials.mask, s.gamma, s.gae_lambda)
        targets = advantages + trials.values
        advantages = normalize_per_task(advantages, trials.mask)
        first_loss = 0.0
        for epoch in range(s.epochs):
            loss = self.loss(trials, advantages, targets, share.total)
            self.optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward untyped
            share.average_gradients(self.policy.parameters())
            self.optimizer.step()
            if epoch == 0:
                first_loss = float(share.sum(loss))
        per_episode = trials.episode_returns.mean(1)  # [B, K]
        return {
            "return_before": share.mean(per_episode[:, 0]),
            "return_after": share.mean(per_episode[:, -1]),
            "loss": first_loss,
        }

    def episode_returns(self, tasks: Tasks, episodes: int, trials: int, seed: int) -> Tensor:
        """``[episodes, B]``: each task's mean return in episode ``k`` of its trials."""
        return self.collect(tasks, trials, episodes, seed).episode_returns.mean(1).T

    def state_dict(self) -> dict[str, object]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
