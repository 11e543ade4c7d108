"""The test protocol: the mean return over fixed test tasks after 0, 1, ..., ``steps``
adaptation steps, with its 95 % confidence interval.

Gradient methods adapt each test task from the meta-learned initialisation with fresh episodes
at every step (no second-order graph; ``eval.step_sizes`` per step, MAML's protocol halving the
rate after the first step is ``[0.1, 0.05]``). RL² "adapts" by its memory: its step ``k`` is the
``k``-th episode of a trial of ``steps + 1`` episodes. The test tasks are those of the test
stream (``eval.seed``) and their episodes are seeded by task, so every method is scored on the
same tasks, and a distributed evaluation (whole batches per process) equals a single one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from fastmeta.functional.params import Params
from fastmeta.rl.adaptation import Adapted, sampling
from fastmeta.rl.build import MetaRL
from fastmeta.rl.config import RLConfig
from fastmeta.rl.meta_trpo import TRPOMetaLearner
from fastmeta.rl.proximal import ProximalMetaLearner
from fastmeta.rl.rl2 import RL2
from fastmeta.rl.rollout import Sampler
from fastmeta.rl.seeding import seed_of
from fastmeta.rl.tasks import Tasks, TaskStream
from fastmeta.train.distributed import Distributed
from fastmeta.train.sharding import share

ROLLOUT_STREAM = 1
GradientMetaRL = TRPOMetaLearner | ProximalMetaLearner


def step_sizes(config: RLConfig, steps: int) -> list[float]:
    """One step size per adaptation step: ``eval.step_sizes`` (the last repeated), or the
    training step size."""
    given = list(config.eval.step_sizes) or [config.algorithm.inner_lr]
    return (given + given[-1:] * steps)[:steps]


def _adapt(
    algorithm: GradientMetaRL,
    tasks: Tasks,
    steps: int,
    episodes: int,
    lrs: list[float],
    seed: int,
) -> tuple[Adapted, Sampler]:
    sampler = replace(algorithm.sampler, episodes=episodes)
    inner = replace(algorithm.inner, lr=lrs, steps=steps)
    policy = algorithm.policy
    with torch.no_grad():
        source = sampling(sampler, policy, tasks, seed)
        return inner.adapt(policy, policy.task_params(len(tasks)), source), sampler


def adapt_to(
    algorithm: MetaRL, tasks: Tasks, steps: int, episodes: int, lrs: list[float], seed: int
) -> Params:
    """The policy parameters adapted to ``tasks`` by the test protocol's ``steps`` steps."""
    if isinstance(algorithm, RL2):
        raise ValueError("RL² adapts by its recurrent state, not by parameters")
    return _adapt(algorithm, tasks, steps, episodes, lrs, seed)[0].final


def adaptation_returns(
    algorithm: MetaRL, tasks: Tasks, steps: int, episodes: int, lrs: list[float], seed: int
) -> Tensor:
    """``[steps + 1, B]``: each task's mean return after ``k`` adaptation steps."""
    if isinstance(algorithm, RL2):
        return algorithm.episode_returns(tasks, steps + 1, episodes, seed)
    adapted, sampler = _adapt(algorithm, tasks, steps, episodes, lrs, seed)
    final, policy = adapted.final, algorithm.policy
    with torch.no_grad():
        last = sampler.sample(
            lambda obs: policy.distribution(final, obs), tasks, seed_of(seed, steps)
        )
    return torch.stack([e.task_returns() for e in [*adapted.episodes, last]])


def evaluate(
    algorithm: MetaRL,
    stream: TaskStream,
    count: int,
    config: RLConfig,
    device: torch.device,
    distributed: Distributed | None = None,
    steps: int | None = None,
) -> Tensor:
    """``[steps + 1, count]`` returns of the first ``count`` tasks of ``stream``; under
    ``torchrun`` each process scores its share of the batches and all get every score."""
    d = distributed or Distributed.current()
    steps = config.eval.steps if steps is None else steps
    lrs = step_sizes(config, steps)
    seed = seed_of(stream.seed, ROLLOUT_STREAM)
    batches = list(stream.evaluation(count))
    first, mine = share(len(batches), d.rank, d.world_size)
    scores = {}
    for position in range(first, first + mine):
        tasks = batches[position]
        tasks = Tasks(tasks.indices, tasks.params.to(device))
        returns = adaptation_returns(algorithm, tasks, steps, config.eval.episodes, lrs, seed)
        scores[position] = returns.cpu()
    if d.active:
        gathered: dict[int, Tensor] = {}
        for part in d.all_gather_object(scores, "gathering the test returns"):
            gathered.update(part)
        scores = gathered
    return torch.cat([scores[p] for p in range(len(batches))], dim=1)


def summarize(returns: Tensor) -> dict[str, dict[str, float]]:
    """Per number of adaptation steps: mean, 95 % CI half-width ``1.96 std / sqrt(n)``, std
    and median of the per-task returns ``[steps + 1, n]``."""
    n = returns.shape[1]
    out = {}
    for k, row in enumerate(returns.double()):
        std = float(row.std()) if n > 1 else 0.0
        out[str(k)] = {
            "mean": float(row.mean()),
            "ci95": 1.96 * std / math.sqrt(n),
            "std": std,
            "median": float(row.median()),
        }
    return out


def format_returns(report: dict[str, Any]) -> str:
    """The lines a user reads: the return after each number of adaptation steps."""
    lines = [
        f"{report['name']}: {report['algorithm']} on {report['env']}",
        f"  protocol: {report['test_tasks']} test tasks, {report['episodes']} episodes per task "
        f"and step, step sizes {report['step_sizes']}",
        f"  weights: {report['checkpoint']} ({report['iterations']} iterations, "
        f"{report['train_seconds'] / 60:.1f} min of training)",
    ]
    for k, r in report["returns"].items():
        lines.append(
            f"  after {k} steps: return {r['mean']:.2f} +- {r['ci95']:.2f} "
            f"(median {r['median']:.2f})"
        )
    return "\n".join(lines)
