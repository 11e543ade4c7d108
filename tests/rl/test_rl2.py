"""RL²: the update replays the rollout exactly (ratio 1 at the first epoch), the recurrent
state carries across the episodes of a trial, and a meta-step changes the policy."""

from __future__ import annotations

import torch

from fastmeta.rl.navigation import Navigation2D, goal_distribution
from fastmeta.rl.policies import RecurrentPolicy
from fastmeta.rl.rl2 import RL2, RL2Settings
from fastmeta.rl.sharding import Share
from fastmeta.rl.tasks import TaskStream


def learner() -> RL2:
    torch.manual_seed(0)
    return RL2(RecurrentPolicy(2, 2, hidden=8), Navigation2D(horizon=6), RL2Settings(), trials=3)


def test_replay_recomputes_the_rollouts_log_probabilities_and_values(float64):
    rl2 = learner()
    tasks = TaskStream(goal_distribution(), 0, 2).batch(0)
    trials = rl2.collect(tasks, trials=3, episodes=2, seed=5)
    assert trials.inputs.shape == (2, 3, 12, rl2.policy.input_dim)
    dist, values = rl2.replay(trials)
    torch.testing.assert_close(dist.log_prob(trials.actions), trials.log_probs, rtol=0, atol=1e-12)
    torch.testing.assert_close(values, trials.values, rtol=0, atol=1e-12)
    second_episode_start = trials.inputs[:, :, 6]
    assert torch.all(second_episode_start[..., -1] == 1)  # the new-episode flag
    torch.testing.assert_close(second_episode_start[..., 2:4], trials.actions[:, :, 5])
    torch.testing.assert_close(second_episode_start[..., 4], trials.rewards[:, :, 5])


def test_a_meta_step_changes_the_policy_and_reports_both_episodes(float64):
    rl2 = learner()
    before = [p.detach().clone() for p in rl2.policy.parameters()]
    tasks = TaskStream(goal_distribution(), 0, 2).batch(0)
    metrics = rl2.meta_step(tasks, seed=1, share=Share.of(2))
    assert set(metrics) == {"return_before", "return_after", "loss"}
    assert any(not torch.equal(a, b) for a, b in zip(before, rl2.policy.parameters(), strict=True))
    returns = rl2.episode_returns(tasks, episodes=3, trials=2, seed=4)
    assert returns.shape == (3, 2)
