"""The catalogue of task distributions: name -> what it is, its tasks, how to build it.

Importing this module imports neither gymnasium, MuJoCo nor Meta-World: each entry builds its
environment through a function that imports them when called, and says which extra it needs,
so a configuration is checked (and ``fastmeta rl envs`` runs) on a machine without them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fastmeta.rl import navigation
from fastmeta.rl.tasks import TaskDistribution, random_sign, uniform_box, unit_circle

if TYPE_CHECKING:
    from fastmeta.rl.config import EnvConfig
    from fastmeta.rl.env import BatchEnv

Build = Callable[["EnvConfig", torch.device], "BatchEnv"]


@dataclass(frozen=True)
class EnvSpec:
    """One task distribution: ``tasks()`` draws its task parameters, ``build`` its batched
    environment; ``needs`` are the modules it imports (``pip install 'fastmeta[...]'``)."""

    name: str
    about: str
    horizon: int
    tasks: Callable[[EnvConfig], TaskDistribution]
    build: Build
    needs: tuple[str, ...] = ()
    extra: str = ""
    reference: str = ""
    test_tasks: Callable[[EnvConfig], TaskDistribution] | None = None
    """The test tasks' distribution when it differs (Meta-World's held-out goals)."""

    def missing(self) -> list[str]:
        """The modules this environment needs that are not installed."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def check_installed(self) -> None:
        """Raise ``ImportError`` naming the extra to install when a module is missing."""
        missing = self.missing()
        if missing:
            raise ImportError(
                f"the {self.name} environment needs {', '.join(missing)}: "
                f"pip install 'fastmeta[{self.extra}]'"
            )


def _navigation(config: EnvConfig, device: torch.device) -> BatchEnv:
    horizon = config.horizon or navigation.HORIZON
    if config.backend == "gymnasium":
        from fastmeta.rl.navigation_gym import make_navigation
        from fastmeta.rl.vector import GymBatchEnv

        return GymBatchEnv(make_navigation, horizon, device)
    return navigation.Navigation2D(horizon)


def _locomotion(family: str) -> Build:
    def build(config: EnvConfig, device: torch.device) -> BatchEnv:
        from fastmeta.rl.locomotion import HORIZON, maker
        from fastmeta.rl.vector import GymBatchEnv

        return GymBatchEnv(maker(family), config.horizon or HORIZON, device)

    return build


def _metaworld_tasks(config: EnvConfig) -> TaskDistribution:
    from fastmeta.rl.metaworld_tasks import task_distribution

    return task_distribution(config)


def _metaworld_test(config: EnvConfig) -> TaskDistribution:
    from fastmeta.rl.metaworld_tasks import test_distribution

    return test_distribution(config)


def _metaworld(config: EnvConfig, device: torch.device) -> BatchEnv:
    from fastmeta.rl.metaworld_tasks import build_env

    return build_env(config, device)


_MUJOCO = ("gymnasium", "mujoco")
_SPECS = (
    EnvSpec(
        "navigation",
        "2D point navigation to a goal uniform in [-0.5, 0.5]^2, horizon 100 (pure torch)",
        navigation.HORIZON,
        lambda c: navigation.goal_distribution(),
        _navigation,
        reference="Finn et al. 2017, sec. 5.3",
    ),
    EnvSpec(
        "halfcheetah-vel",
        "HalfCheetah-v5 running at a target velocity uniform in [0, 2]",
        200,
        lambda c: uniform_box(0.0, 2.0, 1),
        _locomotion("halfcheetah-vel"),
        _MUJOCO,
        "rl",
        "Finn et al. 2017, sec. 5.3",
    ),
    EnvSpec(
        "halfcheetah-dir",
        "HalfCheetah-v5 running forward or backward",
        200,
        lambda c: random_sign(),
        _locomotion("halfcheetah-dir"),
        _MUJOCO,
        "rl",
        "Finn et al. 2017, sec. 5.3; Rothfuss et al. 2019",
    ),
    EnvSpec(
        "ant-dir",
        "Ant-v5 running forward or backward",
        200,
        lambda c: random_sign(),
        _locomotion("ant-dir"),
        _MUJOCO,
        "rl",
        "Finn et al. 2017, sec. 5.3; Rothfuss et al. 2019",
    ),
    EnvSpec(
        "ant-goal-direction",
        "Ant-v5 running in a direction uniform on the unit circle",
        200,
        lambda c: unit_circle(),
        _locomotion("ant-goal-direction"),
        _MUJOCO,
        "rl",
        "Rothfuss et al. 2019 (AntRandDirec2D)",
    ),
    EnvSpec(
        "metaworld-ml1",
        "Meta-World ML1: one manipulation task (env.metaworld_task), its 50 train goals",
        500,
        _metaworld_tasks,
        _metaworld,
        ("gymnasium", "mujoco", "metaworld"),
        "metaworld",
        "Yu et al. 2019",
        _metaworld_test,
    ),
    EnvSpec(
        "metaworld-ml10",
        "Meta-World ML10: 10 training manipulation tasks x 50 goals (test: 5 held-out tasks)",
        500,
        _metaworld_tasks,
        _metaworld,
        ("gymnasium", "mujoco", "metaworld"),
        "metaworld",
        "Yu et al. 2019",
        _metaworld_test,
    ),
)
ENVIRONMENTS = {spec.name: spec for spec in _SPECS}


def env_spec(name: str) -> EnvSpec:
    """The catalogue entry ``name``; a clear error listing the names otherwise."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"env.name={name!r} is not known; choose one of {', '.join(ENVIRONMENTS)}")
    return ENVIRONMENTS[name]
