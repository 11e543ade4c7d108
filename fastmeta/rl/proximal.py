"""ProMP (Rothfuss et al. 2019) and first-order MAML-PPO: several clipped outer steps per batch.

Each meta-step samples as MAML-TRPO does, then takes ``epochs`` Adam steps on the clipped
surrogate of the adapted policies, each re-adapting the changed initialisation on the same
inner episodes; ProMP adds a penalty ``kl_penalty * KL(pi_old || pi)`` on the pre-update
policies of every inner step (its trust region for the inner data) and uses the low variance
curvature inner estimator; MAML-PPO treats the inner gradients as constants (first order)
and has no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastmeta.rl.adaptation import InnerLoop, replaying
from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.meta_trpo import Rollout, sample_meta_batch
from fastmeta.rl.objectives import clipped_surrogate, mean_kl
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.rollout import Sampler
from fastmeta.rl.sharding import Share
from fastmeta.rl.tasks import Tasks


@dataclass(frozen=True)
class ProximalSettings:
    """ProMP's released configuration: 5 epochs, clip 0.3, KL penalty 5e-4, Adam 1e-3."""

    epochs: int = 5
    clip: float = 0.3
    kl_penalty: float = 5e-4
    lr: float = 1e-3


class ProximalMetaLearner:
    """ProMP, or MAML-PPO with a first-order inner loop and no penalty (module docstring)."""

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        inner: InnerLoop,
        settings: ProximalSettings,
        sampler: Sampler,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.settings = settings
        self.sampler = sampler
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=settings.lr)

    def loss(self, rollout: Rollout, pre_update: list[Gaussian], total: int) -> Tensor:
        """The negated objective of the current initialisation on ``rollout`` (this process's
        tasks, divided by ``total``); ``pre_update[k]`` is the old pre-update policy of inner
        step ``k`` on its episodes."""
        policy, s = self.policy, self.settings
        episodes = rollout.adapted.episodes
        again = self.inner.adapt(
            policy, policy.task_params(rollout.outer.mask.shape[0]), replaying(episodes)
        )
        new = policy.distribution(again.final, rollout.outer.observations)
        objective = clipped_surrogate(new, rollout.outer, s.clip).sum()
        if s.kl_penalty:
            for old, params, data in zip(pre_update, again.params, episodes, strict=False):
                new_pre = policy.distribution(params, data.observations)
                objective = objective - s.kl_penalty * mean_kl(old, new_pre, data.mask).sum()
        return -objective / total

    def meta_step(self, tasks: Tasks, seed: int, share: Share) -> dict[str, float]:
        """One meta-step on this process's ``tasks`` (module docstring)."""
        rollout = sample_meta_batch(self.policy, self.inner, self.sampler, tasks, seed)
        episodes = rollout.adapted.episodes
        with torch.no_grad():
            pre_update = [
                self.policy.distribution(p, e.observations)
                for p, e in zip(rollout.adapted.params, episodes, strict=False)
            ]
        first_loss = 0.0
        for epoch in range(self.settings.epochs):
            loss = self.loss(rollout, pre_update, share.total)
            self.optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward untyped
            share.average_gradients(self.policy.parameters())
            self.optimizer.step()
            if epoch == 0:
                first_loss = float(share.sum(loss))
        first = episodes[0] if episodes else rollout.outer
        return {
            "return_before": share.mean(first.task_returns()),
            "return_after": share.mean(rollout.outer.task_returns()),
            "objective": -first_loss,
        }

    def state_dict(self) -> dict[str, object]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
