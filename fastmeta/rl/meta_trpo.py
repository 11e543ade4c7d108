"""MAML-TRPO (Finn et al. 2017) and CAVIA-TRPO (Zintgraf et al. 2019): a policy-gradient inner
loop, a TRPO outer step on the adapted policies.

Each meta-step samples the inner episodes with the current adapted policies (no graph), then
the post-adaptation episodes; the surrogate of the adapted policies on the latter, as a function
of the initialisation through a re-run of the inner loop on the same inner episodes, is what
TRPO maximises under a KL bound between the old and new adapted policies (the Fisher-vector
products differentiate through the inner loop; ``fisher_fraction`` computes them on a fraction of
the tasks). With ``inner.steps = 0`` it is plain TRPO on
the task mixture: the "pretrained" policy of the MAML paper's comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from fastmeta.rl.adaptation import Adapted, InnerLoop, replaying, sampling
from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.objectives import mean_kl, surrogate
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.rollout import Episodes, Sampler
from fastmeta.rl.seeding import seed_of
from fastmeta.rl.sharding import Share
from fastmeta.rl.tasks import Tasks
from fastmeta.rl.trpo import TRPOSettings, trpo_step


@dataclass(frozen=True)
class Rollout:
    """One meta-step's data: the sampling-time adaptation, the post-adaptation episodes and
    the adapted policies that sampled them."""

    adapted: Adapted
    outer: Episodes
    old: Gaussian


def sample_meta_batch(
    policy: GaussianMLPPolicy, inner: InnerLoop, sampler: Sampler, tasks: Tasks, seed: int
) -> Rollout:
    """Adapt on fresh inner episodes (seeds ``(seed, k)``) and sample the post-adaptation
    episodes (seed ``(seed, steps)``), without a graph."""
    with torch.no_grad():
        adapted = inner.adapt(
            policy, policy.task_params(len(tasks)), sampling(sampler, policy, tasks, seed)
        )
        final = adapted.final
        outer = sampler.sample(
            lambda obs: policy.distribution(final, obs), tasks, seed_of(seed, inner.steps)
        )
        old = policy.distribution(final, outer.observations)
    return Rollout(adapted, outer, old)


class TRPOMetaLearner:
    """MAML-TRPO, or CAVIA-TRPO when ``inner.context`` (module docstring)."""

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        inner: InnerLoop,
        trpo: TRPOSettings,
        sampler: Sampler,
        fisher_fraction: float = 1.0,
    ) -> None:
        if not 0 < fisher_fraction <= 1:
            raise ValueError(
                f"the Fisher products' fraction of tasks must be in (0, 1], got {fisher_fraction}"
            )
        self.fisher_fraction = fisher_fraction
        self.policy = policy
        self.inner = inner
        self.trpo = trpo
        self.sampler = sampler

    def objective(self, rollout: Rollout, total: int) -> tuple[Tensor, Tensor]:
        """``(surrogate, KL)`` of the policies adapted from the current initialisation on
        ``rollout``'s inner episodes: sums over this process's tasks divided by ``total``."""
        policy = self.policy
        again = self.inner.adapt(
            policy,
            policy.task_params(rollout.outer.mask.shape[0]),
            replaying(rollout.adapted.episodes),
        )
        new = policy.distribution(again.final, rollout.outer.observations)
        value = surrogate(new, rollout.outer).sum() / total
        return value, mean_kl(rollout.old, new, rollout.outer.mask).sum() / total

    def fisher_kl(self, rollout: Rollout, share: Share) -> Tensor:
        """The KL of :meth:`objective` estimated on ``ceil(fisher_fraction * total)`` tasks
        spread evenly over the whole meta-batch (the mean over them), for cheaper Fisher
        products; each process takes those in its share, so a distributed step equals a
        single-process one."""
        chosen = math.ceil(self.fisher_fraction * share.total)
        spread = {i * share.total // chosen for i in range(chosen)}
        mine = [
            p - share.start for p in range(share.start, share.start + share.count) if p in spread
        ]
        if not mine:  # no chosen task here: contribute zero, still a function of the weights
            return torch.stack([p.sum() for p in self.policy.parameters()]).sum() * 0.0
        part = Rollout(
            Adapted([], [e.take(mine) for e in rollout.adapted.episodes]),
            rollout.outer.take(mine),
            Gaussian(rollout.old.mean[mine], rollout.old.log_std[mine]),
        )
        return self.objective(part, chosen)[1]

    def meta_step(self, tasks: Tasks, seed: int, share: Share) -> dict[str, float]:
        """One meta-step on this process's ``tasks``; the batch's mean returns before and after
        adaptation and what TRPO did."""
        rollout = sample_meta_batch(self.policy, self.inner, self.sampler, tasks, seed)
        fisher = None if self.fisher_fraction == 1 else partial(self.fisher_kl, rollout, share)
        result = trpo_step(
            dict(self.policy.named_parameters()),
            partial(self.objective, rollout, share.total),
            self.trpo,
            fisher,
            share.sum_params,
            share.sum,
        )
        first = rollout.adapted.episodes[0] if rollout.adapted.episodes else rollout.outer
        return {
            "return_before": share.mean(first.task_returns()),
            "return_after": share.mean(rollout.outer.task_returns()),
            "kl": result.kl,
            "surrogate_gain": result.surrogate_after - result.surrogate_before,
            "backtracks": float(result.backtracks),
        }

    def state_dict(self) -> dict[str, object]:
        """Nothing beyond the policy's weights: TRPO keeps no state between steps."""
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """See :meth:`state_dict`."""
