"""The meta-policy-gradient estimators against the exact meta-gradient of a problem solved in
closed form: a linear-Gaussian policy ``a ~ N(W x + c, diag(exp(2 s)))`` on a few states, with
the quadratic reward ``r_b(x, a) = -|a - G_b x - g_b|^2`` of each task ``b`` (float64).

The expected return ``J_b`` is a closed-form function of ``(W, c, s)``, so the exact meta-gradient
of ``mean_b J_b(theta + alpha grad J_b(theta))`` comes from autograd on that formula. The
library's estimators run on "episodes" of one step whose actions are Gauss-Hermite nodes and
whose masks hold the quadrature weights: every expectation they form is then exact (the
integrands are polynomials of degree < 10), so an unbiased estimator must match the exact
meta-gradient to rounding, and a biased one its own closed-form expectation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from fastmeta.rl.adaptation import Adapted, InnerLoop, replaying
from fastmeta.rl.meta_trpo import Rollout, TRPOMetaLearner
from fastmeta.rl.navigation import Navigation2D
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.proximal import ProximalMetaLearner, ProximalSettings
from fastmeta.rl.rollout import Episodes, Sampler
from fastmeta.rl.trpo import TRPOSettings

ALPHA = 0.3
NODES = 5
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def problem() -> tuple[GaussianMLPPolicy, Tensor, Tensor, Tensor]:
    """The policy (random initial weights), the states ``[K, 2]`` and the tasks' ``G [B, 2, 2]``
    and ``g [B, 2]``."""
    torch.manual_seed(3)
    policy = GaussianMLPPolicy(2, 2, hidden=(), init_std=0.7)
    with torch.no_grad():
        policy.layers[0].weight.copy_(torch.tensor([[0.4, -0.2], [0.1, 0.3]]))
        policy.layers[0].bias.copy_(torch.tensor([0.2, -0.1]))
        policy.log_std.copy_(torch.tensor([-0.3, 0.2]))
    states = torch.tensor([[0.5, -1.0], [1.5, 0.3], [-0.7, 0.8]])
    goal_maps = torch.tensor([[[1.0, 0.5], [-0.3, 0.8]], [[-0.6, 0.2], [0.4, -1.1]]])
    goal_offsets = torch.tensor([[0.3, -0.5], [-0.8, 0.6]])
    return policy, states, goal_maps, goal_offsets


def theta(policy: GaussianMLPPolicy) -> tuple[Tensor, Tensor, Tensor]:
    return policy.layers[0].weight, policy.layers[0].bias, policy.log_std


def expected_return(w: Tensor, c: Tensor, s: Tensor, x: Tensor, gm: Tensor, go: Tensor) -> Tensor:
    """``J`` of one task: mean over the states of ``-|W x + c - G x - g|^2 - sum exp(2 s)``."""
    gap = x @ w.T + c - x @ gm.T - go
    return -(gap.pow(2).sum(-1)).mean() - (2 * s).exp().sum()


def naive_surrogate(
    w: Tensor,
    c: Tensor,
    s: Tensor,
    w0: Tensor,
    c0: Tensor,
    s0: Tensor,
    x: Tensor,
    gm: Tensor,
    go: Tensor,
) -> Tensor:
    """``E_{a ~ pi_theta0}[log pi_theta(a|x) r(x, a)]`` in closed form (Gaussian moments):
    the expectation of MAML's reinforce inner surrogate, whose Hessian its estimator has."""
    m, v = x @ w0.T + c0, (2 * s0).exp()  # the sampling policy, per state and dimension
    mu, var = x @ w.T + c, (2 * s).exp()
    target = x @ gm.T + go
    p, q = m - mu, m - target
    mean_log = -(v + p.pow(2)) / (2 * var) - s - HALF_LOG_2PI  # E[l_j]
    mean_reward = -(v + q.pow(2))  # E[r_j]
    fourth = 3 * v.pow(2) + (p.pow(2) + q.pow(2) + 4 * p * q) * v + p.pow(2) * q.pow(2)
    same = fourth / (2 * var) + (s + HALF_LOG_2PI) * (v + q.pow(2))  # E[l_j r_j]
    cross = mean_log.sum(-1) * mean_reward.sum(-1) - (mean_log * mean_reward).sum(-1)
    return (same.sum(-1) + cross).mean()


def reference_meta_gradient(policy: GaussianMLPPolicy, naive: bool) -> Tensor:
    """``grad_theta mean_b J_b(theta'_b)`` with ``theta'_b = theta + alpha grad_theta F_b``,
    ``F_b = J_b`` (exact) or MAML's reinforce surrogate expectation (``naive``)."""
    _, x, gms, gos = problem()
    params = [t.detach().clone().requires_grad_() for t in theta(policy)]
    anchor = [t.detach() for t in params]
    total = torch.zeros(())
    for gm, go in zip(gms, gos, strict=True):
        inner = (
            naive_surrogate(*params, *anchor, x, gm, go)
            if naive
            else expected_return(*params, x, gm, go)
        )
        steps = torch.autograd.grad(inner, params, create_graph=True)
        adapted = [t + ALPHA * g for t, g in zip(params, steps, strict=True)]
        total = total + expected_return(*adapted, x, gm, go) / len(gms)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, params)])


def quadrature_episodes(policy: GaussianMLPPolicy, params: dict[str, Tensor]) -> Episodes:
    """One-step episodes at every state x Gauss-Hermite node, under each task's ``params``:
    masks hold the weights (state probability x node weight), advantages the rewards."""
    _, x, gms, gos = problem()
    nodes, weights = np.polynomial.hermite_e.hermegauss(NODES)
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    z = torch.tensor(np.stack([z1.ravel(), z2.ravel()], -1))  # [N, 2]
    w = torch.tensor(np.outer(weights, weights).ravel() / (2 * math.pi))  # sums to 1
    tasks = gms.shape[0]
    obs = x.repeat_interleave(z.shape[0], 0)  # [K * N, 2]
    obs = obs.reshape(1, -1, 1, 2).expand(tasks, -1, -1, -1)
    with torch.no_grad():
        dist = policy.distribution({k: v.detach() for k, v in params.items()}, obs)
        noise = z.repeat(x.shape[0], 1).reshape(1, -1, 1, 2)
        actions = dist.mean + dist.log_std.exp() * noise
        log_probs = dist.log_prob(actions)
    target = torch.einsum("bij,bnj->bni", gms, obs[:, :, 0]) + gos[:, None]
    rewards = -(actions[:, :, 0] - target).pow(2).sum(-1, keepdim=True)
    mask = (w.repeat(x.shape[0]) / x.shape[0]).reshape(1, -1, 1).expand(tasks, -1, 1)
    return Episodes(obs, actions, rewards, mask.contiguous(), log_probs, rewards)


def rollout_for(policy: GaussianMLPPolicy, inner: InnerLoop) -> Rollout:
    """Quadrature inner episodes at theta, the adaptation, quadrature outer episodes at theta'."""
    tasks = problem()[2].shape[0]
    start = policy.task_params(tasks)
    inner_episodes = quadrature_episodes(policy, start)
    with torch.no_grad():
        adapted = inner.adapt(policy, start, replaying([inner_episodes]))
    outer = quadrature_episodes(policy, adapted.final)
    old = policy.distribution(
        {k: v.detach() for k, v in adapted.final.items()}, outer.observations
    ).detach()
    return Rollout(Adapted(adapted.params, [inner_episodes]), outer, old)


def flat_grad(value: Tensor, policy: GaussianMLPPolicy) -> Tensor:
    grads = torch.autograd.grad(value, list(theta(policy)))
    return torch.cat([g.reshape(-1) for g in grads])


def trpo_meta_gradient(estimator: str) -> tuple[Tensor, GaussianMLPPolicy]:
    policy = problem()[0]
    inner = InnerLoop(ALPHA, 1, estimator)  # type: ignore[arg-type]
    learner = TRPOMetaLearner(policy, inner, TRPOSettings(), Sampler(Navigation2D(), 1))
    rollout = rollout_for(policy, inner)
    surrogate, _ = learner.objective(rollout, total=problem()[2].shape[0])
    return flat_grad(surrogate, policy), policy


def test_quadrature_makes_the_inner_step_the_exact_policy_gradient(float64):
    policy = problem()[0]
    rollout = rollout_for(policy, InnerLoop(ALPHA, 1, "lvc"))
    _, x, gms, gos = problem()
    for b in range(gms.shape[0]):
        params = [t.detach().clone().requires_grad_() for t in theta(policy)]
        exact = torch.autograd.grad(expected_return(*params, x, gms[b], gos[b]), params)
        adapted = rollout.adapted.final
        step = [
            adapted[n][b] - p
            for n, p in zip(("layers.0.weight", "layers.0.bias", "log_std"), params, strict=True)
        ]
        for s, g in zip(step, exact, strict=True):
            torch.testing.assert_close(s, ALPHA * g, rtol=1e-10, atol=1e-12)


def test_lvc_meta_gradient_equals_the_exact_meta_gradient(float64):
    estimate, policy = trpo_meta_gradient("lvc")
    exact = reference_meta_gradient(policy, naive=False)
    torch.testing.assert_close(estimate, exact, rtol=1e-9, atol=1e-10)


def test_maml_reinforce_meta_gradient_equals_its_closed_form_and_misses_the_exact_one(float64):
    estimate, policy = trpo_meta_gradient("reinforce")
    torch.testing.assert_close(
        estimate, reference_meta_gradient(policy, naive=True), rtol=1e-9, atol=1e-10
    )
    exact = reference_meta_gradient(policy, naive=False)
    assert (estimate - exact).norm() > 0.05 * exact.norm()  # the known bias is not small here


def test_promp_objective_gradient_at_the_old_policy_is_the_exact_meta_gradient(float64):
    policy = problem()[0]
    inner = InnerLoop(ALPHA, 1, "lvc")
    learner = ProximalMetaLearner(
        policy, inner, ProximalSettings(kl_penalty=0.1), Sampler(Navigation2D(), 1)
    )
    rollout = rollout_for(policy, inner)
    pre = [
        policy.distribution(
            rollout.adapted.params[0], rollout.adapted.episodes[0].observations
        ).detach()
    ]
    loss = learner.loss(rollout, pre, total=problem()[2].shape[0])
    exact = reference_meta_gradient(policy, naive=False)
    torch.testing.assert_close(-flat_grad(loss, policy), exact, rtol=1e-9, atol=1e-10)
