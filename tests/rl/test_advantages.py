"""GAE and discounted returns against their definitions written out, and the linear feature
baseline against a ridge regression solved per task with NumPy."""

from __future__ import annotations

import numpy as np
import torch

from fastmeta.rl.advantages import discounted_returns, gae, normalize_per_task
from fastmeta.rl.baseline import RIDGE, fit_predict


def random_episodes(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(3, 4, 12, generator=g)
    values = torch.randn(3, 4, 12, generator=g)
    lengths = torch.randint(1, 13, (3, 4), generator=g)
    mask = (torch.arange(12) < lengths.unsqueeze(-1)).double()
    return rewards * mask, values, mask


def definition(rewards, values, mask, gamma, lam):
    """``A_t = sum_l (gamma lam)^l delta_{t+l}`` over the taken steps, by explicit sums."""
    out = torch.zeros_like(rewards)
    for index in np.ndindex(*rewards.shape[:-1]):
        taken = [t for t in range(rewards.shape[-1]) if mask[index][t] > 0]
        r, v = rewards[index], values[index]
        deltas = []
        for i, t in enumerate(taken):
            following = v[taken[i + 1]] if i + 1 < len(taken) else 0.0
            deltas.append(float(r[t] + gamma * following - v[t]))
        for i, t in enumerate(taken):
            out[index][t] = sum((gamma * lam) ** k * d for k, d in enumerate(deltas[i:]))
    return out


def test_gae_equals_its_definition(float64):
    rewards, values, mask = random_episodes()
    for gamma, lam in [(0.99, 1.0), (0.9, 0.95), (1.0, 0.0)]:
        expected = definition(rewards, values, mask, gamma, lam)
        torch.testing.assert_close(gae(rewards, values, mask, gamma, lam), expected)


def test_gae_skips_a_gap_in_the_mask_as_one_sequence(float64):
    rewards, values, _ = random_episodes(1)
    mask = torch.ones_like(rewards)
    mask[..., 3:6] = 0  # an RL² trial whose first episode ended early
    torch.testing.assert_close(
        gae(rewards, values, mask, 0.95, 0.9), definition(rewards, values, mask, 0.95, 0.9)
    )
    assert torch.all(gae(rewards, values, mask, 0.95, 0.9)[..., 3:6] == 0)


def test_discounted_returns_are_the_discounted_sums_of_the_rewards_to_come(float64):
    rewards, _, mask = random_episodes(2)
    returns = discounted_returns(rewards, mask, 0.9)
    for index in np.ndindex(*rewards.shape[:-1]):
        for t in range(12):
            if mask[index][t]:
                tail = [0.9**k * float(rewards[index][t + k]) for k in range(12 - t)]
                assert abs(float(returns[index][t]) - sum(tail)) < 1e-12


def test_normalized_advantages_have_zero_mean_and_unit_variance_per_task(float64):
    rewards, values, mask = random_episodes(3)
    a = normalize_per_task(gae(rewards, values, mask, 0.99, 1.0), mask)
    for b in range(3):
        taken = a[b][mask[b] > 0]
        assert abs(float(taken.mean())) < 1e-12
        assert abs(float(taken.pow(2).mean()) - 1) < 1e-6


def test_linear_baseline_is_the_ridge_regression_on_the_papers_features(float64):
    g = torch.Generator().manual_seed(4)
    obs = torch.randn(2, 3, 7, 2, generator=g) * 4
    returns = torch.randn(2, 3, 7, generator=g)
    mask = torch.ones(2, 3, 7)
    mask[1, 2, 4:] = 0
    values = fit_predict(obs, returns, mask)
    for b in range(2):
        rows, targets, feats = [], [], []
        for e in range(3):
            for t in range(7):
                o = np.clip(obs[b, e, t].numpy(), -10, 10)
                s = t / 100
                f = np.concatenate([o, o**2, [s, s**2, s**3, 1.0]])
                feats.append(f)
                if mask[b, e, t]:
                    rows.append(f)
                    targets.append(float(returns[b, e, t]))
        x, y = np.array(rows), np.array(targets)
        w = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ y)
        expected = (np.array(feats) @ w).reshape(3, 7)
        np.testing.assert_allclose(values[b].numpy(), expected, rtol=1e-7, atol=1e-9)
