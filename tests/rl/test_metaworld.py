"""The Meta-World adapter: ML1's training and test goals are the benchmark's, a sub-environment
takes its task's goal, and rollouts run through the vector API. Skipped without Meta-World;
in the slow suite (``-m slow``) because building the ML1 benchmark resets its environment
100 times (about 10-25 s on this project's CPU)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("metaworld", reason="Meta-World is not installed: pip install metaworld")

from fastmeta.rl.config import EnvConfig
from fastmeta.rl.metaworld_tasks import MetaWorldTaskEnv, benchmark, build_env, task_distribution
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.rollout import Sampler
from fastmeta.rl.tasks import TaskStream

pytestmark = pytest.mark.slow
CONFIG = EnvConfig(name="metaworld-ml1", metaworld_task="reach-v3", horizon=4)


def test_tasks_index_the_benchmarks_train_and_test_goals():
    bench = benchmark(CONFIG.name, CONFIG.metaworld_task)
    env = MetaWorldTaskEnv(CONFIG)
    for split, goals in ((0, bench.train_tasks), (1, bench.test_tasks)):
        for index in (0, 7):
            env.task = np.array([index, split])
            wanted = pickle.loads(goals[index].data)["rand_vec"]
            np.testing.assert_array_equal(env.inner._last_rand_vec, wanted)
    train = TaskStream(task_distribution(CONFIG), 0, 6).batch(0).params
    assert (train[:, 1] == 0).all() and ((train[:, 0] >= 0) & (train[:, 0] < 50)).all()
    test = TaskStream(task_distribution(CONFIG, 1), 0, 6).batch(0).params
    assert (test[:, 1] == 1).all()
    env.close()


def test_rollouts_through_the_vector_api():
    env = build_env(CONFIG, torch.device("cpu"))
    assert (env.observation_dim, env.action_dim, env.horizon) == (39, 4, 4)
    policy = GaussianMLPPolicy(39, 4, hidden=(8,))
    tasks = TaskStream(task_distribution(CONFIG), 0, 2).batch(0)
    params = policy.task_params(2)
    with torch.no_grad():
        episodes = Sampler(env, 2).sample(lambda o: policy.distribution(params, o), tasks, 0)
    assert episodes.rewards.shape == (2, 2, 4) and torch.isfinite(episodes.rewards).all()
    env.close()
