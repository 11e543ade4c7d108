"""The batched 2D navigation environment against a step-by-step loop of the reference code's
dynamics, its gymnasium wrapper through gymnasium's vector API against the batched one, and
the determinism of task and episode seeds."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from fastmeta.rl.navigation import Navigation2D, goal_distribution
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.rollout import Sampler, collect, exploration_noise
from fastmeta.rl.tasks import Tasks, TaskStream

needs_gymnasium = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium") is None, reason="gymnasium is not installed"
)


def loop_reference(goal: list[float], actions: list[list[float]]):
    """One episode, one step at a time, as in ``point_env_randgoal.py`` behind rllab's
    ``normalize`` (actions in [-1, 1] scaled to the [-0.1, 0.1] box)."""
    x, y = 0.0, 0.0
    out = []
    for ax, ay in actions:
        x += 0.1 * max(-1.0, min(1.0, ax))
        y += 0.1 * max(-1.0, min(1.0, ay))
        dx, dy = x - goal[0], y - goal[1]
        out.append(((x, y), -math.sqrt(dx * dx + dy * dy), abs(dx) < 0.01 and abs(dy) < 0.01))
    return out


def test_batched_navigation_equals_a_step_by_step_loop(float64):
    g = torch.Generator().manual_seed(0)
    goals = torch.rand(3, 2, generator=g) - 0.5
    goals[2] = torch.tensor([0.1, -0.2])  # reachable exactly: the episode ends at the goal
    actions = torch.randn(3, 4, 30, 2, generator=g) * 1.5
    actions[2, 0, 0] = torch.tensor([1.0, -1.0])
    actions[2, 0, 1] = torch.tensor([0.0, -1.0])
    env = Navigation2D(horizon=30)
    env.reset(goals, [[0] * 4] * 3)
    steps = [env.step(actions[:, :, t]) for t in range(30)]
    for b in range(3):
        for e in range(4):
            expected = loop_reference(goals[b].tolist(), actions[b, e].tolist())
            for t, (position, reward, done) in enumerate(expected):
                assert steps[t].observations[b, e].tolist() == pytest.approx(position, abs=1e-12)
                assert float(steps[t].rewards[b, e]) == pytest.approx(reward, abs=1e-12)
                assert bool(steps[t].done[b, e]) == done
    assert not bool(steps[0].done[2, 0]) and bool(steps[1].done[2, 0])  # the goal reached


def test_task_i_depends_only_on_the_seed_and_i():
    stream = TaskStream(goal_distribution(), seed=7, batch_size=5)
    whole = stream.batch(1)
    alone = stream.tasks(7, 1)
    assert torch.equal(whole.params[2], alone.params[0])
    assert torch.equal(TaskStream(goal_distribution(), 7, 3).tasks(5, 5).params, whole.params)
    assert not torch.equal(TaskStream(goal_distribution(), 8, 5).batch(1).params, whole.params)
    assert (whole.params.abs() <= 0.5).all()


def test_a_tasks_episodes_do_not_depend_on_the_other_tasks_in_the_batch():
    stream = TaskStream(goal_distribution(), seed=3, batch_size=4)
    tasks = stream.batch(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    sampler = Sampler(Navigation2D(horizon=20), episodes=3)

    def run(t: Tasks):
        params = policy.task_params(len(t))
        with torch.no_grad():
            return sampler.sample(lambda obs: policy.distribution(params, obs), t, seed=11)

    together = run(tasks)
    reordered = run(Tasks(tasks.indices[::-1], tasks.params.flip(0)))
    alone = run(tasks.slice(2, 1))
    assert torch.equal(together.actions[2], alone.actions[0])
    assert torch.equal(together.rewards[2], alone.rewards[0])
    assert torch.equal(together.actions[0], reordered.actions[3])
    assert not torch.equal(together.actions[0], run(tasks).actions[1])
    noise = exploration_noise(tasks, 3, 20, 2, seed=11)
    assert not torch.equal(noise, exploration_noise(tasks, 3, 20, 2, seed=12))


@needs_gymnasium
def test_gymnasium_wrapper_through_the_vector_api_equals_the_batched_environment(float64):
    from fastmeta.rl.navigation_gym import make_navigation
    from fastmeta.rl.vector import GymBatchEnv

    tasks = TaskStream(goal_distribution(), seed=5, batch_size=3).batch(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,), init_std=0.3)
    params = policy.task_params(3)

    def act(obs):
        return policy.distribution(params, obs)

    torch_env = collect(Navigation2D(horizon=25), act, tasks, 4, seed=2)
    gym_env = collect(GymBatchEnv(make_navigation, 25), act, tasks, 4, seed=2)
    for name in ("observations", "actions", "rewards", "mask", "log_probs"):
        torch.testing.assert_close(
            getattr(gym_env, name), getattr(torch_env, name), rtol=1e-12, atol=1e-12
        )
