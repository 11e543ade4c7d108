"""TRPO's step on a small problem where the Fisher matrix can be formed explicitly (float64):
the step is along the natural gradient ``F^-1 g``, stays within the KL bound, is not
trivially small, and improves the surrogate; a step that cannot improve leaves the weights."""

from __future__ import annotations

import torch
from torch import Tensor

from fastmeta.rl.gaussian import Gaussian
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.trpo import TRPOSettings, trpo_step


def setup() -> tuple[GaussianMLPPolicy, Tensor, Tensor, Tensor, Gaussian]:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, hidden=(), init_std=0.8)
    obs = torch.randn(1, 200, 3)
    with torch.no_grad():
        old = policy.distribution(policy.task_params(1), obs)
        actions = old.sample(torch.randn(1, 200, 2))
        advantages = torch.randn(1, 200) + actions.sum(-1)
    return policy, obs, actions, advantages, old.detach()


def evaluator(policy: GaussianMLPPolicy, obs: Tensor, actions: Tensor, adv: Tensor, old: Gaussian):
    def evaluate() -> tuple[Tensor, Tensor]:
        new = policy.distribution(policy.task_params(1), obs)
        ratio = (new.log_prob(actions) - old.log_prob(actions)).exp()
        return (ratio * adv).mean(), old.kl(new).mean()

    return evaluate


def flat(policy: GaussianMLPPolicy) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


def test_step_follows_the_natural_gradient_within_the_kl_bound_and_improves(float64):
    policy, obs, actions, adv, old = setup()
    evaluate = evaluator(policy, obs, actions, adv, old)
    before = flat(policy)
    names = [n for n, _ in policy.named_parameters()]
    shapes = [p.shape for p in policy.parameters()]

    def as_params(vector: Tensor) -> dict[str, Tensor]:
        parts = torch.split(vector, [s.numel() for s in shapes])
        return {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}

    def kl_of(vector: Tensor) -> Tensor:
        new = policy.distribution({n: t.unsqueeze(0) for n, t in as_params(vector).items()}, obs)
        return old.kl(new).mean()

    def surrogate_of(vector: Tensor) -> Tensor:
        new = policy.distribution({n: t.unsqueeze(0) for n, t in as_params(vector).items()}, obs)
        return ((new.log_prob(actions) - old.log_prob(actions)).exp() * adv).mean()

    fisher = torch.autograd.functional.hessian(kl_of, before)
    gradient = torch.autograd.functional.jacobian(surrogate_of, before)
    settings = TRPOSettings(max_kl=0.01, cg_iterations=before.numel(), damping=1e-8)
    natural = torch.linalg.solve(fisher + settings.damping * torch.eye(before.numel()), gradient)

    result = trpo_step(dict(policy.named_parameters()), evaluate, settings)

    step = flat(policy) - before
    assert result.accepted
    cosine = torch.nn.functional.cosine_similarity(step, natural, dim=0)
    assert cosine > 1 - 1e-8
    kl = float(kl_of(flat(policy)))
    assert kl <= settings.max_kl
    assert kl > 0.5 * settings.max_kl * settings.backtrack_ratio ** (2 * result.backtracks)
    assert result.surrogate_after > result.surrogate_before
    assert abs(result.kl - kl) < 1e-12


def test_a_step_that_cannot_improve_leaves_the_weights_unchanged(float64):
    policy, obs, actions, adv, old = setup()
    evaluate = evaluator(policy, obs, actions, adv, old)

    def never_better() -> tuple[Tensor, Tensor]:
        value, kl = evaluate()
        if torch.is_grad_enabled():
            return value, kl
        return value.detach() * 0 - 1e9, kl  # every line-search try scores worse

    before = flat(policy)
    result = trpo_step(
        dict(policy.named_parameters()), never_better, TRPOSettings(max_backtracks=3)
    )
    assert not result.accepted and result.backtracks == 3
    assert torch.equal(flat(policy), before)
