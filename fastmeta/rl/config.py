"""The typed configuration of a meta-RL run (``config.yaml`` of its run directory, presets).

Sections: ``env`` (the task distribution), ``policy``, ``algorithm``, ``sampling``, ``train``
and ``eval``, plus ``seed`` and ``device``; ``kind: rl`` marks the file as a meta-RL run.
Loading and ``key=value`` overrides go through :mod:`fastmeta.config`, so a wrong key or value
is refused with the valid ones before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fastmeta.config import about, load_yaml, setting


@dataclass(frozen=True)
class EnvConfig:
    """Which task distribution (``fastmeta rl envs`` lists them) and its episode length."""

    name: str = setting("navigation", "the task distribution (fastmeta rl envs lists them)")
    horizon: int | None = setting(None, "steps per episode; unset: the environment's", minimum=1)
    backend: Literal["torch", "gymnasium"] = setting(
        "torch", "2D navigation only: batched torch, or its gymnasium wrapper (vector API)"
    )
    metaworld_task: str = setting("reach-v3", "Meta-World ML1 only: the task (e.g. push-v3)")


@dataclass(frozen=True)
class PolicyConfig:
    """The policy network: a Gaussian MLP, or RL²'s GRU policy."""

    hidden: tuple[int, ...] = setting((100, 100), "hidden layer sizes of the MLP", minimum=1)
    activation: Literal["relu", "tanh"] = setting("relu", "hidden non-linearity")
    init_std: float = setting(1.0, "initial action standard deviation", above=0)
    context_dim: int = setting(0, "CAVIA's context size (cavia only)", minimum=0)
    recurrent_hidden: int = setting(64, "RL²'s GRU state size (rl2 only)", minimum=1)


@dataclass(frozen=True)
class AlgorithmConfig:
    """The method and its settings (each method reads the ones its docs/RL.md entry names)."""

    name: Literal["maml-trpo", "cavia", "promp", "maml-ppo", "rl2"] = setting(
        "maml-trpo", "the method"
    )
    inner_lr: float = setting(0.1, "step size of the inner policy-gradient steps", above=0)
    inner_steps: int = setting(1, "inner steps in training (0: no adaptation)", minimum=0)
    estimator: Literal["reinforce", "lvc"] = setting(
        "reinforce", "inner estimator: MAML's reinforce or ProMP's low variance curvature"
    )
    first_order: bool = setting(False, "treat the inner gradients as constants")
    max_kl: float = setting(0.01, "TRPO: KL bound of the outer step", above=0)
    cg_iterations: int = setting(10, "TRPO: conjugate-gradient iterations", minimum=1)
    cg_damping: float = setting(1e-5, "TRPO: damping added to the Fisher matrix", minimum=0)
    backtrack_ratio: float = setting(0.8, "TRPO: line-search shrink factor", above=0, below=1)
    max_backtracks: int = setting(15, "TRPO: line-search tries", minimum=1)
    fisher_fraction: float = setting(
        1.0, "TRPO: fraction of the tasks the Fisher products use", above=0
    )
    outer_lr: float = setting(1e-3, "ProMP, MAML-PPO, RL²: Adam learning rate", above=0)
    epochs: int = setting(5, "ProMP, MAML-PPO, RL²: outer steps per batch", minimum=1)
    clip: float = setting(0.3, "ProMP, MAML-PPO, RL²: ratio clipping range", above=0)
    kl_penalty: float = setting(5e-4, "ProMP: weight of the pre-update KL penalty", minimum=0)
    value_coef: float = setting(0.5, "RL²: weight of the value loss", minimum=0)
    entropy_coef: float = setting(0.0, "RL²: weight of the entropy bonus", minimum=0)
    trial_episodes: int = setting(2, "RL²: episodes of one task per trial in training", minimum=1)


@dataclass(frozen=True)
class SamplingConfig:
    """Tasks per meta-batch, episodes per task and step, and the advantages."""

    meta_batch: int = setting(20, "tasks per meta-step", minimum=1)
    episodes: int = setting(20, "episodes per task and inner step (RL²: trials)", minimum=1)
    gamma: float = setting(0.99, "discount", minimum=0)
    gae_lambda: float = setting(1.0, "GAE lambda", minimum=0)
    linear_baseline: bool = setting(True, "the linear feature baseline (else none)")
    normalize_advantages: bool = setting(True, "normalise advantages per task")


@dataclass(frozen=True)
class TrainConfig:
    """Length of training, validation, checkpoints."""

    iterations: int = setting(500, "meta-steps (0: evaluate the initial policy)", minimum=0)
    time_limit_minutes: float | None = setting(
        None, "stop after this much training time (summed over resumes)", above=0
    )
    val_every: int = setting(0, "validate every this many meta-steps; 0: never", minimum=0)
    val_tasks: int = setting(20, "validation tasks", minimum=1)
    checkpoint_every: int = setting(10, "checkpoint every this many meta-steps", minimum=1)
    keep_checkpoints: int = setting(3, "newest checkpoints kept (best.pt besides)", minimum=1)


@dataclass(frozen=True)
class EvalConfig:
    """The test protocol: fixed test tasks, the return after 0..steps adaptation steps."""

    tasks: int = setting(40, "test tasks", minimum=1)
    episodes: int = setting(20, "episodes per task and adaptation step", minimum=1)
    steps: int = setting(3, "adaptation steps reported (RL²: episodes after the first)", minimum=0)
    step_sizes: tuple[float, ...] = setting(
        (),
        "one step size per adaptation step (the last repeats); unset: algorithm.inner_lr",
        above=0,
    )
    seed: int = setting(1_000_003, "seed of the test tasks and their episodes")
    batch_tasks: int = setting(20, "test tasks evaluated at once", minimum=1)


@dataclass(frozen=True)
class RLConfig:
    """Everything that defines a meta-RL run."""

    kind: Literal["rl"] = setting("rl", "marks a meta-RL configuration")
    name: str = setting("rl-run", "the run's name (default run directory: runs/<name>)")
    reference: str | None = setting(None, "the published result a preset reproduces")
    seed: int = setting(0, "seeds the initial policy and the training tasks and episodes")
    device: Literal["auto", "cpu", "cuda"] = setting(
        "cpu", "where the policy runs (auto: CUDA when available)"
    )
    env: EnvConfig = field(default_factory=EnvConfig, metadata=about("the task distribution"))
    policy: PolicyConfig = field(default_factory=PolicyConfig, metadata=about("the policy"))
    algorithm: AlgorithmConfig = field(
        default_factory=AlgorithmConfig, metadata=about("the method")
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata=about("rollouts"))
    train: TrainConfig = field(default_factory=TrainConfig, metadata=about("training"))
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=about("the test protocol"))


def read_rl_config(text: str, where: str = "the configuration") -> RLConfig:
    """An :class:`RLConfig` from YAML ``text``, every key and value checked."""
    try:
        config: RLConfig = load_yaml(RLConfig, text)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return config
