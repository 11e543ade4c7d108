"""Meta-World (Yu et al. 2019) ML1 and ML10 as task distributions, and Meta-World's own
meta-test protocol for a trained run.

The benchmark object (``metaworld.ML1(task)`` or ``metaworld.ML10()``, built with
:data:`BENCHMARK_SEED`) fixes the goals: 50 per task class, separate train and test goals for
ML1, separate train and test classes for ML10. A task of fastmeta's streams is ``[index,
split]``: goal ``index`` of the training (0) or test (1) list, drawn uniformly by the seeded
streams, so training and evaluation tasks are reproducible like every other distribution.
Each sub-environment of the vector API holds the Meta-World environment of its task's class
and calls ``set_task`` when its task changes.

:func:`metaworld_evaluation` scores a run with ``metaworld.evaluation.metalearning_evaluation``
on the benchmark's test split (``Meta-World/ML1-test`` or ``Meta-World/ML10-test`` vector
environments): an agent that adapts the policy with the run's inner loop on Meta-World's
adaptation episodes, then acts with the adapted policy's mean action; the success rate is
Meta-World's.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium
import metaworld
import numpy as np
import torch
from metaworld.evaluation import metalearning_evaluation

from fastmeta.functional.params import Params
from fastmeta.rl.adaptation import replaying
from fastmeta.rl.metaworld_batch import evaluation_batch
from fastmeta.rl.rollout import Episodes
from fastmeta.rl.seeding import generator, seed_of
from fastmeta.rl.tasks import TaskDistribution
from fastmeta.rl.vector import GymBatchEnv

if TYPE_CHECKING:
    from fastmeta.rl.config import EnvConfig
    from fastmeta.rl.meta_trpo import TRPOMetaLearner
    from fastmeta.rl.proximal import ProximalMetaLearner

BENCHMARK_SEED = 0
HORIZON = 500
TRAIN, TEST = 0, 1
Array = np.ndarray[Any, Any]


@functools.cache
def benchmark(name: str, task: str) -> Any:
    """The Meta-World benchmark of ``env.name`` (built once per process)."""
    if name == "metaworld-ml1":
        return metaworld.ML1(task, seed=BENCHMARK_SEED)
    if name == "metaworld-ml10":
        return metaworld.ML10(seed=BENCHMARK_SEED)
    raise ValueError(f"{name!r} is not a Meta-World benchmark; use metaworld-ml1 or -ml10")


def _tasks(config: EnvConfig, split: int) -> list[Any]:
    bench = benchmark(config.name, config.metaworld_task)
    return list(bench.train_tasks if split == TRAIN else bench.test_tasks)


def task_distribution(config: EnvConfig, split: int = TRAIN) -> TaskDistribution:
    """Goal ``index`` of the ``split`` list, uniformly: parameters ``[index, split]``."""
    count = len(_tasks(config, split))

    def draw(g: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, count, (1,), generator=g).to(torch.float64)
        return torch.cat([index, torch.tensor([float(split)], dtype=torch.float64)])

    return TaskDistribution(2, draw, f"one of the {count} {('train', 'test')[split]} goals")


def test_distribution(config: EnvConfig) -> TaskDistribution:
    return task_distribution(config, TEST)


class MetaWorldTaskEnv(gymnasium.Env[Array, Array]):
    """One Meta-World environment whose goal is the ``task`` attribute ``[index, split]``."""

    def __init__(self, config: EnvConfig) -> None:
        self.config = config
        bench = benchmark(config.name, config.metaworld_task)
        self.classes = {**bench.train_classes, **bench.test_classes}
        self.lists = {TRAIN: _tasks(config, TRAIN), TEST: _tasks(config, TEST)}
        first = self.lists[TRAIN][0]
        self.inner = self.classes[first.env_name]()
        self.inner.set_task(first)
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space
        self._task = np.array([0.0, TRAIN])

    @property
    def task(self) -> Array:
        return self._task

    @task.setter
    def task(self, value: Array) -> None:
        chosen = self.lists[int(value[1])][int(value[0])]
        if type(self.inner) is not self.classes[chosen.env_name]:
            self.inner.close()
            self.inner = self.classes[chosen.env_name]()
        self.inner.set_task(chosen)
        self._task = np.asarray(value, dtype=np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        obs, info = self.inner.reset()
        return np.asarray(obs, dtype=np.float64), dict(info)

    def step(self, action: Array) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.inner.step(action)
        return np.asarray(obs, np.float64), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        self.inner.close()


def build_env(config: EnvConfig, device: torch.device) -> GymBatchEnv:
    """The batched Meta-World environment (episodes of at most 500 steps)."""
    horizon = min(config.horizon or HORIZON, HORIZON)
    return GymBatchEnv(functools.partial(MetaWorldTaskEnv, config), horizon, device)


class AdaptingAgent:
    """Meta-World's ``MetaLearningAgent`` around a gradient meta-learner: it samples with the
    current adapted policy, adapts on the episodes it saw (one inner step per ``adapt``), and
    evaluates with the adapted policy's mean action."""

    def __init__(
        self,
        algorithm: TRPOMetaLearner | ProximalMetaLearner,
        envs: int,
        lrs: list[float],
        seed: int,
    ) -> None:
        self.algorithm = algorithm
        self.envs = envs
        self.lrs = lrs
        self.seed = seed
        self.rounds = 0
        self.params: Params = {}
        self.steps: list[Any] = []
        self.log_probs: list[torch.Tensor] = []
        self.adaptations = 0

    def init(self) -> None:
        with torch.no_grad():
            self.params = self.algorithm.policy.task_params(self.envs)
        self.steps, self.log_probs, self.adaptations = [], [], 0
        self.rounds += 1

    def _distribution(self, observations: Array) -> Any:
        obs = torch.as_tensor(observations, dtype=torch.get_default_dtype()).unsqueeze(1)
        return self.algorithm.policy.distribution(self.params, obs)

    @torch.no_grad()
    def adapt_action(self, observations: Array) -> tuple[Array, dict[str, Array]]:
        dist = self._distribution(observations)
        g = generator(seed_of(self.seed, self.rounds, self.adaptations, len(self.steps)))
        noise = torch.randn(dist.mean.shape, generator=g, dtype=dist.mean.dtype)
        action = dist.sample(noise)
        self.log_probs.append(dist.log_prob(action)[:, 0])
        return action[:, 0].clamp(-1, 1).numpy(), {}

    def step(self, timestep: Any) -> None:
        self.steps.append(timestep)

    @torch.no_grad()
    def adapt(self) -> None:
        dtype = torch.get_default_dtype()
        obs = torch.as_tensor(np.stack([t.observation for t in self.steps], 1), dtype=dtype)
        actions = torch.as_tensor(np.stack([t.action for t in self.steps], 1), dtype=dtype)
        rewards = torch.as_tensor(np.stack([t.reward for t in self.steps], 1), dtype=dtype)
        log_probs = torch.stack(self.log_probs, 1)
        length = obs.shape[1] // HORIZON * HORIZON  # whole episodes of 500 steps

        def episodes(t: torch.Tensor) -> torch.Tensor:
            return t[:, :length].reshape(self.envs, -1, HORIZON, *t.shape[2:])

        raw = Episodes(
            episodes(obs),
            episodes(actions),
            episodes(rewards),
            torch.ones_like(episodes(rewards)),
            episodes(log_probs),
        )
        data = self.algorithm.sampler.process(raw)
        lr = self.lrs[min(self.adaptations, len(self.lrs) - 1)]
        inner = self.algorithm.inner
        step = replace(inner, lr=lr, steps=1, first_order=True)
        self.params = step.adapt(self.algorithm.policy, self.params, replaying([data])).final
        self.steps, self.log_probs = [], []
        self.adaptations += 1

    @torch.no_grad()
    def eval_action(self, observations: Array) -> Array:
        mean: torch.Tensor = self._distribution(observations).mean[:, 0]
        return mean.clamp(-1, 1).numpy()

    def reset(self, env_mask: Array) -> None:
        """The policy keeps no state between episodes."""


def metaworld_evaluation(run_dir: Path, evals: int = 10) -> dict[str, Any]:
    """Meta-World's meta-test of the run in ``run_dir`` (module docstring)."""
    from fastmeta.rl.evaluation import step_sizes
    from fastmeta.rl.rl2 import RL2
    from fastmeta.rl.trainer import RLTrainer

    trainer = RLTrainer.resume(run_dir, progress_bar=False)
    c = trainer.config
    if not c.env.name.startswith("metaworld") or isinstance(trainer.algorithm, RL2):
        raise ValueError("metaworld-eval scores gradient meta-learners trained on Meta-World")
    best = trainer.run.load_best(trainer.expected(), ignore=("rl_config.eval",))
    if best is not None:
        trainer.policy.load_state_dict(best["policy"])
    name = "Meta-World/ML1-test" if c.env.name == "metaworld-ml1" else "Meta-World/ML10-test"
    kwargs: dict[str, Any] = {}
    if c.env.name == "metaworld-ml1":
        kwargs["env_name"] = c.env.metaworld_task
    bench = benchmark(c.env.name, c.env.metaworld_task)
    classes = len(bench.test_classes)
    batch = evaluation_batch(len(bench.test_tasks) // classes, classes, c.eval.batch_tasks)
    envs = cast(
        "gymnasium.vector.SyncVectorEnv",
        gymnasium.make_vec(name, seed=c.eval.seed, meta_batch_size=batch, **kwargs),
    )
    agent = AdaptingAgent(
        trainer.algorithm,
        envs.num_envs,
        step_sizes(c, max(c.eval.steps, 1)),
        seed_of(c.eval.seed, 2),
    )
    success, mean_return, per_task = metalearning_evaluation(
        agent,
        envs,
        num_evals=evals,
        adaptation_steps=max(c.eval.steps, 1),
        adaptation_episodes=c.eval.episodes,
    )
    envs.close()
    result = {
        "success_rate": float(success),
        "mean_return": float(mean_return),
        "per_task": {k: float(v) for k, v in per_task.items()},
        "evals": evals,
    }
    trainer.run.report("metaworld_eval").write_text(json.dumps(result, indent=2) + "\n")
    return result
