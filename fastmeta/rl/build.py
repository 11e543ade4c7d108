"""From a meta-RL configuration to the run's parts: environment, task streams, policy, method.

Every part gets only its own section; the checks a section alone cannot make (an algorithm
that needs a setting of another section) are made here, with the key to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastmeta.rl.adaptation import InnerLoop
from fastmeta.rl.config import RLConfig
from fastmeta.rl.env import BatchEnv
from fastmeta.rl.environments import env_spec
from fastmeta.rl.meta_trpo import TRPOMetaLearner
from fastmeta.rl.policies import GaussianMLPPolicy, RecurrentPolicy
from fastmeta.rl.proximal import ProximalMetaLearner, ProximalSettings
from fastmeta.rl.rl2 import RL2, RL2Settings
from fastmeta.rl.rollout import Sampler
from fastmeta.rl.tasks import TaskStream
from fastmeta.rl.trpo import TRPOSettings

MetaRL = TRPOMetaLearner | ProximalMetaLearner | RL2
VALIDATION_SEED_OFFSET = 1


@dataclass(frozen=True)
class Streams:
    """Training, validation and test tasks: three seeded streams of one distribution."""

    train: TaskStream
    val: TaskStream
    test: TaskStream


def resolve_device(config: RLConfig) -> torch.device:
    """``config.device``, with ``auto`` meaning CUDA when available."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=cpu")
    return torch.device(config.device)


def check_config(config: RLConfig) -> None:
    """The cross-section checks (module docstring); raises ``ValueError`` naming the key."""
    spec = env_spec(config.env.name)
    a = config.algorithm
    if a.name == "cavia" and config.policy.context_dim < 1:
        raise ValueError("algorithm.name=cavia adapts a context vector: set policy.context_dim")
    if a.name != "cavia" and config.policy.context_dim:
        raise ValueError(f"policy.context_dim is CAVIA's; {a.name} does not read it: leave it 0")
    if config.env.backend == "gymnasium" and spec.name != "navigation":
        raise ValueError("env.backend=gymnasium is for navigation; the others are gymnasium's")
    if a.name == "maml-ppo" and not a.first_order:
        raise ValueError(
            "algorithm.name=maml-ppo is first-order MAML-PPO: set algorithm.first_order=true "
            "(or use promp for a second-order method)"
        )
    if a.fisher_fraction > 1:
        raise ValueError(f"algorithm.fisher_fraction={a.fisher_fraction} must be at most 1")


def build_env(config: RLConfig, device: torch.device) -> BatchEnv:
    """The batched environment of ``config.env`` (ImportError naming the extra if missing)."""
    spec = env_spec(config.env.name)
    spec.check_installed()
    return spec.build(config.env, device)


def build_streams(config: RLConfig) -> Streams:
    """The training (``seed``), validation and test (``eval.seed``) task streams; the test
    stream draws from the environment's test distribution where it has one."""
    spec = env_spec(config.env.name)
    distribution = spec.tasks(config.env)
    held_out = spec.test_tasks(config.env) if spec.test_tasks else distribution
    batch, test_batch = config.sampling.meta_batch, config.eval.batch_tasks
    return Streams(
        TaskStream(distribution, config.seed, batch),
        TaskStream(held_out, config.eval.seed + VALIDATION_SEED_OFFSET, test_batch),
        TaskStream(held_out, config.eval.seed, test_batch),
    )


def build_policy(config: RLConfig, env: BatchEnv) -> nn.Module:
    """The policy of ``config.policy`` for ``env``'s observations and actions."""
    p = config.policy
    if config.algorithm.name == "rl2":
        return RecurrentPolicy(env.observation_dim, env.action_dim, p.recurrent_hidden, p.init_std)
    return GaussianMLPPolicy(
        env.observation_dim, env.action_dim, p.hidden, p.activation, p.init_std, p.context_dim
    )


def build_sampler(config: RLConfig, env: BatchEnv, episodes: int | None = None) -> Sampler:
    s = config.sampling
    return Sampler(
        env,
        episodes or s.episodes,
        s.gamma,
        s.gae_lambda,
        s.linear_baseline,
        s.normalize_advantages,
    )


def inner_loop(config: RLConfig, lr: float | list[float] | None = None) -> InnerLoop:
    """The inner loop of ``config.algorithm`` (``lr`` replaces its step size)."""
    a = config.algorithm
    return InnerLoop(
        a.inner_lr if lr is None else lr,
        a.inner_steps,
        a.estimator,
        a.first_order,
        context=a.name == "cavia",
    )


def build_algorithm(config: RLConfig, policy: nn.Module, env: BatchEnv) -> MetaRL:
    """The method of ``config.algorithm`` around ``policy``."""
    check_config(config)
    a = config.algorithm
    sampler = build_sampler(config, env)
    if a.name == "rl2":
        assert isinstance(policy, RecurrentPolicy)
        s = config.sampling
        settings = RL2Settings(
            a.trial_episodes,
            a.epochs,
            a.clip,
            a.outer_lr,
            a.value_coef,
            a.entropy_coef,
            s.gamma,
            s.gae_lambda,
        )
        return RL2(policy, env, settings, s.episodes)
    assert isinstance(policy, GaussianMLPPolicy)
    if a.name in ("maml-trpo", "cavia"):
        trpo = TRPOSettings(
            a.max_kl, a.cg_iterations, a.cg_damping, a.backtrack_ratio, a.max_backtracks
        )
        return TRPOMetaLearner(policy, inner_loop(config), trpo, sampler, a.fisher_fraction)
    penalty = a.kl_penalty if a.name == "promp" else 0.0
    settings_p = ProximalSettings(a.epochs, a.clip, penalty, a.outer_lr)
    return ProximalMetaLearner(policy, inner_loop(config), settings_p, sampler)
