"""MAML++ (Antoniou et al. 2019, "How to train your MAML"), batched over tasks.

On top of MAML:

- **multi-step loss**: the query loss after every inner step, weighted; the weights start
  uniform and are annealed towards the last step over the first ``multi_step_fraction`` of
  training (the paper's schedule, :func:`multi_step_loss_weights`), then only the last counts;
- **derivative-order annealing**: first-order meta-gradients for the first
  ``first_order_fraction`` of training, second order afterwards;
- **per-step BatchNorm weights and biases**: every BatchNorm layer gets one affine pair per
  inner step (meta-learned, not adapted in the inner loop); the model's own pair is frozen;
- **per-step BatchNorm running statistics**: training tracks, per layer and inner step, a
  running mean and variance of the support batches' statistics (momentum 0.1, averaged over
  the tasks of a meta-batch); ``batchnorm_statistics="running"`` evaluates with them instead of
  each episode's batch statistics (the default, ``"batch"``, is transductive like MAML++'s code,
  which normalises with batch statistics at test time too);
- **learned per-layer per-step inner learning rates** (LSLR), one scalar per parameter tensor
  and step, meta-learned with the initialisation;
- a cosine-annealed meta learning rate: ``optimizer.schedule=cosine`` in the trainer.

Schedules follow training progress through :meth:`MAMLPlusPlus.start_step`, which the trainer
calls before every meta-step (call it yourself in a hand-written loop).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner, InnerLoopSettings
from fastmeta.algorithms.options import MAMLPlusPlusOptions
from fastmeta.functional.batchnorm_statistics import BatchNormStatistics, Statistics
from fastmeta.functional.inner import descend
from fastmeta.functional.params import (
    NameFilter,
    Params,
    functional_forward,
    module_state,
    select_adaptable,
)
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fastmeta.run_config import AlgorithmConfig

# The paper's floor on the weight of each non-final step, as a multiple of 1 / steps.
NON_FINAL_FLOOR = 0.03
# Momentum of the per-step running statistics (BatchNorm's default).
STATISTICS_MOMENTUM = 0.1


def multi_step_loss_weights(steps: int, progress: float, anneal_fraction: float) -> list[float]:
    """Weights of the query losses after inner steps ``1..steps`` at training ``progress``.

    ``progress`` is the fraction of training done. While it is below ``anneal_fraction``, with
    ``a = progress / anneal_fraction``, every non-final step weighs ``max((1 - a) / steps,
    0.03 / steps)`` and the last one the rest (so at the start all weigh ``1 / steps``): the
    linear decay of Antoniou et al. (2019), expressed per fraction of training instead of per
    epoch. From ``anneal_fraction`` on only the last step counts.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if progress >= anneal_fraction:
        return [0.0] * (steps - 1) + [1.0]
    annealed = progress / anneal_fraction
    floor = NON_FINAL_FLOOR / steps
    non_final = max((1.0 - annealed) / steps, floor)
    final = min((1.0 + annealed * (steps - 1)) / steps, 1.0 - (steps - 1) * floor)
    return [non_final] * (steps - 1) + [final]


class MAMLPlusPlus(InnerLoopLearner):
    """MAML++ over any ``nn.Module``.

    Args:
        model: the network whose initialisation is meta-learned. Its BatchNorm affine
            parameters are frozen and replaced by per-step copies when ``per_step_batchnorm``.
        lr: initial value of every learned inner learning rate.
        steps: inner steps in training (also the number of per-step rates and BN pairs).
        test_steps: inner steps in :meth:`evaluate` (default ``steps``); steps beyond ``steps``
            reuse the last step's rate and BatchNorm pair.
        learn_lr: meta-learn the per-layer per-step rates (LSLR); ``False`` keeps them fixed.
        per_step_batchnorm: one BatchNorm weight, bias and running statistics per inner step.
        batchnorm_statistics: what :meth:`evaluate` normalises with: each episode's
            ``"batch"`` statistics or the per-step ``"running"`` ones (needs
            ``per_step_batchnorm``).
        multi_step_fraction: fraction of training over which the multi-step loss weights are
            annealed (0: only the last step's loss, as in MAML).
        first_order_fraction: fraction of training that uses first-order meta-gradients.
        first_order: first order throughout (overrides ``first_order_fraction``).
        adapt: which parameters the inner loop changes (see :class:`~fastmeta.algorithms.MAML`).
        loss_fn, inner_loss_scale, strategy, chunk_size: as in :class:`~fastmeta.algorithms.MAML`.
    """

    independent_tasks = False  # per-step running statistics are updated once per forward
    min_steps = 1

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.1,
        steps: int = 5,
        *,
        learn_lr: bool = True,
        per_step_batchnorm: bool = True,
        batchnorm_statistics: Literal["batch", "running"] = "batch",
        multi_step_fraction: float = 0.1,
        first_order_fraction: float = 0.5,
        adapt: Iterable[str] | NameFilter | None = None,
        **settings: Unpack[InnerLoopSettings],
    ) -> None:
        super().__init__(model, steps=steps, **settings)
        for name, value in [("multi_step_fraction", multi_step_fraction),
                            ("first_order_fraction", first_order_fraction)]:  # fmt: skip
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a fraction of training in [0, 1], got {value}")
        if batchnorm_statistics not in ("batch", "running"):
            raise ValueError(
                f"batchnorm_statistics must be 'batch' or 'running', got {batchnorm_statistics!r}"
            )
        if batchnorm_statistics == "running" and not per_step_batchnorm:
            raise ValueError("batchnorm_statistics='running' needs per_step_batchnorm=True")
        self.batchnorm_statistics = batchnorm_statistics
        self.multi_step_fraction = multi_step_fraction
        self.first_order_fraction = first_order_fraction
        self.norm_layers: list[str] = []
        self.norm_weights = nn.ParameterList()
        self.norm_biases = nn.ParameterList()
        if per_step_batchnorm:
            self._make_per_step_batchnorm()
        self.adapt_names = select_adaptable(dict(model.named_parameters()), adapt)
        self.inner_lrs = nn.ParameterList(
            nn.Parameter(torch.full((steps,), float(lr)), requires_grad=learn_lr)
            for _ in self.adapt_names
        )
        self.progress = 0.0

    def _make_per_step_batchnorm(self) -> None:
        for name, module in self.model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                self.norm_layers.append(name)
                for source, target in [(module.weight, self.norm_weights),
                                       (module.bias, self.norm_biases)]:  # fmt: skip
                    target.append(nn.Parameter(source.detach().repeat(self.steps, 1)))
                    source.requires_grad_(False)
                index, shape = len(self.norm_layers) - 1, (self.steps, module.num_features)
                self.register_buffer(f"running_mean_{index}", module.weight.new_zeros(shape))
                self.register_buffer(f"running_var_{index}", module.weight.new_ones(shape))

    # ----------------------------------------------------------------- schedules
    def start_step(self, step: int, total: int) -> None:
        """Set the training progress that the loss weights and derivative order follow."""
        self.progress = step / max(total, 1)

    def loss_weights(self) -> list[float]:
        """The multi-step loss weights at the current progress."""
        return multi_step_loss_weights(self.steps, self.progress, self.multi_step_fraction)

    def first_order(self) -> bool:
        """Whether the current meta-step uses first-order meta-gradients."""
        return self._first_order or self.progress < self.first_order_fraction

    @property
    def meta_first_order(self) -> bool:
        return self.first_order()

    # ----------------------------------------------------------------- per-step pieces
    def step_params(self, step: int) -> Params:
        """The BatchNorm weights and biases of inner step ``step`` (by model parameter name)."""
        index = min(step, self.steps - 1)
        params = {}
        for i, layer in enumerate(self.norm_layers):
            params[f"{layer}.weight"] = self.norm_weights[i][index]
            params[f"{layer}.bias"] = self.norm_biases[i][index]
        return params

    def running_statistics(self, step: int) -> list[Statistics]:
        """The running ``(mean, variance)`` of every BatchNorm layer at inner step ``step``."""
        index = min(step, self.steps - 1)
        return [
            (getattr(self, f"running_mean_{i}")[index], getattr(self, f"running_var_{i}")[index])
            for i in range(len(self.norm_layers))
        ]

    def step_lrs(self, step: int) -> dict[str, Tensor]:
        """The inner learning rate of every adapted parameter at inner step ``step``."""
        index = min(step, self.steps - 1)
        return {n: rates[index] for n, rates in zip(self.adapt_names, self.inner_lrs, strict=True)}

    # ----------------------------------------------------------------- running
    def forward(self, batch: TaskBatch) -> MetaOutput:
        """The weighted multi-step query loss of every task, with the current schedules."""
        return self.run_weighted(
            batch, self.steps, self.loss_weights(), self.first_order(), track=self.training
        )

    def evaluate(self, batch: TaskBatch, steps: int | None = None) -> MetaOutput:
        """Adapt with ``test_steps`` (or ``steps``), score the last step; builds no graph."""
        steps = self.test_steps if steps is None else steps
        running = self.batchnorm_statistics == "running"
        with torch.no_grad():
            return self.run_weighted(
                batch, steps, [0.0] * (steps - 1) + [1.0], True, running=running
            )

    def run_weighted(
        self,
        batch: TaskBatch,
        steps: int,
        weights: list[float],
        first_order: bool,
        *,
        track: bool = False,
        running: bool = False,
    ) -> MetaOutput:
        """Adapt every task for ``steps`` steps; the task loss is ``sum_k weights[k] * query
        loss after step k + 1`` (steps with weight 0 are not scored). ``track`` updates the
        per-step running statistics; ``running`` normalises with them."""
        params, buffers = module_state(self.model)
        fixed = {n: p for n, p in params.items() if n not in self.adapt_names}
        track = track and bool(self.norm_layers)

        def forward(step: int, fast: Params, x: Tensor) -> tuple[Tensor, list[Statistics]]:
            merged = {**fixed, **fast, **self.step_params(step)}
            given = self.running_statistics(step) if running else None
            with BatchNormStatistics(given) as statistics:
                out = functional_forward(self.model, merged, buffers, x)
            if track and len(statistics.recorded) != len(self.norm_layers):
                raise RuntimeError(
                    f"MAML++ saw {len(statistics.recorded)} BatchNorm calls in one forward for "
                    f"{len(self.norm_layers)} layers; each layer must run once per forward"
                )
            return out, statistics.recorded

        lrs = [self.step_lrs(step) for step in range(steps)]

        def task_fn(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Any, ...]:
            def support_loss(adapted: Params, step: int) -> tuple[Tensor, list[Statistics]]:
                out, recorded = forward(step, adapted, sx)
                return self.support_loss(out, sy), recorded

            # the weighted query loss so far and the last scored predictions
            scored: dict[str, Tensor] = {"total": sx.new_zeros(())}

            def score_queries(step: int, fast: Params) -> None:
                if weights[step] != 0.0 or step == steps - 1:
                    scored["predictions"] = forward(step, fast, qx)[0]
                    loss = self.loss_fn(scored["predictions"], qy)
                    scored["total"] = scored["total"] + weights[step] * loss

            per_step: list[list[Statistics]] = []
            descend(
                support_loss, {n: params[n] for n in self.adapt_names}, steps=steps, lr=lrs,
                first_order=first_order, after_step=score_queries, aux=per_step,
            )  # fmt: skip
            return scored["total"], scored["predictions"], (per_step if track else [])

        losses, predictions, statistics = self.per_task(task_fn, batch)
        if track:
            self._update_running_statistics(statistics)
        return MetaOutput.from_tasks(losses, predictions, batch.query_y)

    @torch.no_grad()
    def _update_running_statistics(self, per_step: list[list[Statistics]]) -> None:
        """Move each step's running statistics towards the mean over tasks of the support
        batches' statistics (``per_step[k][layer]`` holds ``[tasks, C]`` tensors)."""
        for step, layers in enumerate(per_step):
            index = min(step, self.steps - 1)
            for i, (mean, var) in enumerate(layers):
                getattr(self, f"running_mean_{i}")[index].lerp_(mean.mean(0), STATISTICS_MOMENTUM)
                getattr(self, f"running_var_{i}")[index].lerp_(var.mean(0), STATISTICS_MOMENTUM)


def build_mamlpp(
    settings: AlgorithmConfig,
    options: MAMLPlusPlusOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> MAMLPlusPlus:
    """MAML++ from a run's ``algorithm`` section: ``inner_lr`` initialises the learned rates and
    ``first_order=true`` turns derivative-order annealing into first order always."""
    a = settings
    return MAMLPlusPlus(
        model, lr=a.inner_lr, steps=a.inner_steps, test_steps=a.test_inner_steps,
        learn_lr=options.learn_lr, per_step_batchnorm=options.per_step_batchnorm,
        batchnorm_statistics=options.batchnorm_statistics,
        multi_step_fraction=options.multi_step_fraction,
        first_order_fraction=options.first_order_fraction, first_order=a.first_order,
        adapt=a.adapt, inner_loss_scale=a.inner_loss_scale, strategy=a.strategy,
        chunk_size=a.chunk_size,
    )  # fmt: skip
