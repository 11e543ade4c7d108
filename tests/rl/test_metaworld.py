"""The Meta-World adapter: ML1's training and test goals are the benchmark's, a sub-environment
takes its task's goal, rollouts run through the vector API, and ``metaworld-eval`` runs
Meta-World's meta-test on a trained run. Skipped without Meta-World;
in the slow suite (``-m slow``) because building the ML1 benchmark resets its environment
100 times (about 10-25 s on this project's CPU)."""

from __future__ import annotations

import json
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


def test_metaworld_eval_scores_a_run_with_the_benchmarks_own_protocol(tmp_path):
    from fastmeta.config import apply_overrides
    from fastmeta.rl.metaworld_tasks import metaworld_evaluation
    from fastmeta.rl.presets import load_config
    from fastmeta.rl.trainer import RLTrainer

    settings = ["env.horizon=4", "sampling.meta_batch=2", "sampling.episodes=1",
                "train.iterations=1", "eval.tasks=1", "eval.episodes=1",
                "eval.batch_tasks=20", "policy.hidden=[8]"]  # fmt: skip
    config = apply_overrides(load_config("promp-metaworld-ml1"), settings)
    RLTrainer.create(config, tmp_path / "run", progress_bar=False).fit()
    # eval.batch_tasks=20 does not split ML1's 50 test goals evenly: the batch becomes 10
    result = metaworld_evaluation(tmp_path / "run", evals=1)
    assert 0.0 <= result["success_rate"] <= 1.0 and np.isfinite(result["mean_return"])
    assert set(result["per_task"]) == {"reach-v3"} and result["evals"] == 1
    assert json.loads((tmp_path / "run" / "metaworld_eval.json").read_text()) == result
