"""The MuJoCo task families: each reward is the papers' formula of the simulator's state, the
vector API's resets are determined by their seeds. Skipped without MuJoCo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco", reason="MuJoCo is not installed: pip install 'fastmeta[rl]'")
pytest.importorskip("gymnasium", reason="gymnasium is not installed: pip install 'fastmeta[rl]'")

from fastmeta.rl.locomotion import maker
from fastmeta.rl.vector import GymBatchEnv


def torso_velocity(env, step, body: bool):
    """The torso's displacement over one control step divided by its duration: of its root
    joint (ProMP's HalfCheetah: ``qpos[0]``) or of its body frame (its Ant: ``get_body_com``)."""
    data = env.unwrapped.data

    def where():
        return (data.body("torso").xpos if body else data.qpos)[:2].copy()

    before = where()
    out = step()
    return out, (where() - before) / env.unwrapped.dt


@pytest.mark.parametrize(
    ("family", "task"),
    [("halfcheetah-vel", [1.3]), ("halfcheetah-dir", [-1.0]), ("ant-goal-direction", [0.6, 0.8])],
)
def test_rewards_follow_the_papers_formulas(family, task):
    env = maker(family)()
    env.set_wrapper_attr("task", np.array(task))
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, env.action_space.shape)
        (_, reward, *_, info), velocity = torso_velocity(
            env, lambda a=action: env.step(a), family.startswith("ant")
        )
        control = float(np.square(action).sum())
        if family == "halfcheetah-vel":
            expected = -abs(velocity[0] - task[0]) - 0.05 * control
        elif family == "halfcheetah-dir":
            expected = task[0] * velocity[0] - 0.05 * control
        else:
            forces = np.clip(env.unwrapped.data.cfrc_ext, -1, 1)
            healthy = float(info["reward_survive"])
            expected = (
                np.dot(task, velocity) - 0.5 * control - 5e-4 * np.square(forces).sum() + healthy
            )
            assert healthy == 1.0
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-6)
    env.close()


def test_vector_resets_are_set_by_their_seeds():
    env = GymBatchEnv(maker("halfcheetah-dir"), horizon=5)
    tasks = torch.tensor([[1.0], [-1.0]])
    first = env.reset(tasks, [[1, 2], [3, 4]])
    again = env.reset(tasks, [[1, 2], [3, 4]])
    other = env.reset(tasks, [[5, 2], [3, 4]])
    assert first.shape == (2, 2, env.observation_dim)
    assert torch.equal(first, again)
    assert not torch.equal(first[0, 0], other[0, 0]) and torch.equal(first[1], other[1])
    step = env.step(torch.zeros(2, 2, env.action_dim))
    assert step.rewards.shape == (2, 2) and not step.done.any()
    env.close()
