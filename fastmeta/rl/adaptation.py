"""Adapting a policy to each task by policy-gradient steps, on the one inner-loop engine.

:meth:`InnerLoop.adapt` runs :func:`fastmeta.functional.inner.descend` on the batched policy
parameters of all tasks at once (a leading task dimension, no ``vmap``: each task's parameters
get the gradient of its own loss, see :mod:`fastmeta.rl.objectives`). The episodes of inner
step ``k`` come from a :data:`Source`: :func:`sampling` collects them with the current
adapted policy (and keeps them), :func:`replaying` hands back episodes collected before, which
is how TRPO's line search and ProMP's epochs re-adapt a changed initialisation on the same data.
CAVIA adapts only the context vector (``context=True``); the network enters the inner loss as
a closed-over constant of the step, so second-order terms still reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from fastmeta.functional.inner import descend
from fastmeta.functional.params import Params, one_task_at_a_time
from fastmeta.rl.objectives import Estimator, inner_loss
from fastmeta.rl.policies import CONTEXT, GaussianMLPPolicy
from fastmeta.rl.rollout import Episodes, Sampler
from fastmeta.rl.seeding import seed_of
from fastmeta.rl.tasks import Tasks

Source = Callable[[Params, int], Episodes]
"""``source(params, step)``: the episodes of inner step ``step`` for the (detached) adapted
parameters ``params``."""


@dataclass(frozen=True)
class Adapted:
    """The adapted parameters after each inner step (``params[0]`` is the initialisation,
    ``params[-1]`` the final) and the episodes each step was taken on."""

    params: list[Params]
    episodes: list[Episodes]

    @property
    def final(self) -> Params:
        return self.params[-1]


@dataclass(frozen=True)
class InnerLoop:
    """``steps`` policy-gradient steps with rate ``lr`` (one per step, or one for all) and the
    inner ``estimator``; ``first_order`` treats the inner gradients as constants."""

    lr: float | Sequence[float]
    steps: int
    estimator: Estimator
    first_order: bool = False
    context: bool = False

    def adapt(
        self, policy: GaussianMLPPolicy, params: Params, source: Source, steps: int | None = None
    ) -> Adapted:
        """Adapt ``params`` (``policy.task_params(B)``) on the episodes of ``source``; under
        ``torch.no_grad()`` no graph is kept. ``steps`` overrides :attr:`steps`."""
        adapted = [CONTEXT] if self.context else [n for n in params if n != CONTEXT]
        fixed = {n: p for n, p in params.items() if n not in adapted}
        trail: list[Params] = [params]
        used: list[Episodes] = []

        def loss(fast: Params, step: int) -> Tensor:
            full = {**fixed, **fast}
            episodes = source({n: p.detach() for n, p in full.items()}, step)
            used.append(episodes)
            return inner_loss(
                policy.distribution(full, episodes.observations), episodes, self.estimator
            )

        def keep(step: int, fast: Params) -> None:
            trail.append({**fixed, **fast})

        lr = list(self.lr) if isinstance(self.lr, Sequence) else self.lr
        with one_task_at_a_time():  # no vmap around: plain autograd for the batched tasks
            descend(
                loss,
                {n: params[n] for n in adapted},
                steps=self.steps if steps is None else steps,
                lr=lr,
                first_order=self.first_order,
                after_step=keep,
            )
        return Adapted(trail, used)


def sampling(sampler: Sampler, policy: GaussianMLPPolicy, tasks: Tasks, seed: int) -> Source:
    """Collect inner step ``k``'s episodes with the current adapted policy, seed ``(seed, k)``."""

    def source(params: Params, step: int) -> Episodes:
        return sampler.sample(
            lambda obs: policy.distribution(params, obs), tasks, seed_of(seed, step)
        )

    return source


def replaying(episodes: Sequence[Episodes]) -> Source:
    """Hand back ``episodes[k]`` for inner step ``k`` whatever the parameters."""
    return lambda params, step: episodes[step]
