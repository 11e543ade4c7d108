"""The policy-gradient objectives of the inner and outer loops, per task.

Every function averages over the taken steps of each task (``mask`` is also read as a weight
per step, which lets a test put quadrature weights there) and returns one value per task
``[B]``, or, for the inner loss, their sum: task ``b``'s adapted parameters then get the
gradient of task ``b``'s loss alone.

The inner estimators (Rothfuss et al. 2019, sec. 4-5):

- ``"reinforce"``: ``-mean(log pi(a|s) * A)``, the surrogate of MAML's reference code. Its
  gradient is the policy gradient, but its Hessian misses the ``E[grad log pi grad log pi^T A]``
  term, so the meta-gradient through it is biased.
- ``"lvc"``: ProMP's low variance curvature estimator ``-mean(pi(a|s) / stop_grad(pi(a|s)) *
  A)``, with the sampling policy's log-probabilities in the denominator. Same value and
  gradient; its Hessian is unbiased for one-step episodes and a low-variance approximation
  (cross-time terms dropped) for longer ones.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.rollout import Episodes

Estimator = Literal["reinforce", "lvc"]
ESTIMATORS: tuple[str, ...] = ("reinforce", "lvc")


def per_task_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``[B]``: the mask-weighted mean of ``values [B, ...]`` over each task's steps."""
    dims = tuple(range(1, values.dim()))
    return (values * mask).sum(dims) / mask.sum(dims)


def advantages_of(episodes: Episodes) -> Tensor:
    if episodes.advantages is None:
        raise ValueError("these episodes have no advantages: sample them with Sampler.sample")
    return episodes.advantages


def inner_loss(policy: Gaussian, episodes: Episodes, estimator: Estimator) -> Tensor:
    """The inner (adaptation) loss summed over tasks (module docstring)."""
    log_prob = policy.log_prob(episodes.actions)
    if estimator == "reinforce":
        weight = log_prob
    elif estimator == "lvc":
        weight = (log_prob - episodes.log_probs).exp()
    else:
        raise ValueError(f"unknown inner estimator {estimator!r}; choose one of {ESTIMATORS}")
    return -per_task_mean(weight * advantages_of(episodes), episodes.mask).sum()


def surrogate(policy: Gaussian, episodes: Episodes) -> Tensor:
    """TRPO's surrogate ``mean(pi / pi_old * A)`` per task (to maximise)."""
    ratio = (policy.log_prob(episodes.actions) - episodes.log_probs).exp()
    return per_task_mean(ratio * advantages_of(episodes), episodes.mask)


def clipped_surrogate(policy: Gaussian, episodes: Episodes, clip: float) -> Tensor:
    """PPO's clipped surrogate ``mean(min(r A, clip(r, 1 - clip, 1 + clip) A))`` per task."""
    ratio = (policy.log_prob(episodes.actions) - episodes.log_probs).exp()
    advantages = advantages_of(episodes)
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    return per_task_mean((ratio * advantages).minimum(clipped), episodes.mask)


def mean_kl(old: Gaussian, new: Gaussian, mask: Tensor) -> Tensor:
    """``KL(old || new)`` averaged over each task's steps, ``[B]``."""
    return per_task_mean(old.kl(new), mask)
