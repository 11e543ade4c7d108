"""Discounted returns and generalised advantage estimation (Schulman et al. 2016) over masks.

Tensors are ``[..., T]`` with a 0/1 ``mask`` marking the steps that were taken. Steps outside
the mask are skipped: the recursion runs from each taken step to the next taken one, which
ends an episode with a zero value where its mask ends (a goal reached, the horizon) and
chains the episodes of an RL² trial into one sequence where one ended early.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``R_t = r_t + gamma R_{t'}`` with ``t'`` the next taken step (0 after the last)."""
    return gae(rewards, torch.zeros_like(rewards), mask, gamma, 1.0)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE(``gamma``, ``lam``) advantages: ``A_t = delta_t + gamma lam A_{t'}`` with
    ``delta_t = r_t + gamma V_{t'} - V_t`` and ``t'`` the next taken step (see the module
    docstring); zero at steps outside the mask."""
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lambda must lie in [0, 1]; got {gamma}, {lam}")
    taken = mask > 0
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    next_value = torch.zeros_like(running)
    for t in reversed(range(rewards.shape[-1])):
        here = taken[..., t]
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        running = torch.where(here, delta + gamma * lam * running, running)
        next_value = torch.where(here, values[..., t], next_value)
        advantages[..., t] = torch.where(here, running, 0.0)
    return advantages


def normalize_per_task(advantages: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages centred and scaled to unit variance over the taken steps of each task
    (leading dimension), as MAML's and ProMP's reference code normalise them."""
    dims = tuple(range(1, advantages.dim()))
    count = mask.sum(dims, keepdim=True).clamp_min(1)
    mean = (advantages * mask).sum(dims, keepdim=True) / count
    var = ((advantages - mean).pow(2) * mask).sum(dims, keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + eps) * mask
