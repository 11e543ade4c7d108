"""The trainer: meta-train any algorithm, validate, checkpoint, resume exactly, and test.

A run lives in one directory (:class:`~fastmeta.run.directory.RunDirectory`): the resolved
configuration, metrics, checkpoints (the last few, written atomically, and the best on
validation) and the test report. Resuming continues from
the newest checkpoint; since episode ``i`` depends only on the seed and ``i`` and every RNG
state is saved, the resumed run ends exactly where an uninterrupted one does (same machine).

Under ``torchrun`` each process trains on its share of every meta-batch and the meta-gradients
are averaged (see :mod:`fastmeta.train.sharding`); rank 0 alone reads and writes the run
directory and hands what it reads to the others, so the nodes need no shared file system.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from tqdm import tqdm

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner
from fastmeta.algorithms.registry import algorithm_spec
from fastmeta.config import apply_overrides
from fastmeta.functional.params import uses_batch_statistics
from fastmeta.run.build import (
    Sources,
    build_algorithm,
    build_model,
    build_optimizer,
    build_sources,
    resolve_device,
)
from fastmeta.run.directory import RunDirectory, fingerprint
from fastmeta.run.settings import resolve_config, upgrade_override
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch
from fastmeta.train.cuda_graph import CapturedMetaStep
from fastmeta.train.distributed import Distributed
from fastmeta.train.evaluate import summarize
from fastmeta.train.logging import MetricsLog
from fastmeta.train.precision import precision
from fastmeta.train.report import protocol, write_episodes
from fastmeta.train.rng import capture_rng_state, restore_rng_state
from fastmeta.train.sharding import (
    average_gradients,
    gather_output,
    gather_scores,
    local_batch,
)

EVAL_SETTINGS = ("eval.", "sampler.test_", "algorithm.test_inner_steps")


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; training stopped at ``step``."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"meta-loss is {loss} at step {step}; lower the learning rates or set "
            "optimizer.grad_clip"
        )
        self.step = step


@dataclass
class Progress:
    """What is carried across steps and checkpoints besides the weights."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    stale_validations: int = 0
    train_seconds: float = 0.0
    processes: int = 1


class Trainer:
    """Meta-trains ``config`` in ``run_dir``; :meth:`fit` runs to the end and tests.

    ``distributed`` is this process's place in a multi-process run (default: the process group
    of :func:`~fastmeta.train.distributed.distributed_session`, or a single process).
    ``sources`` replaces the task sources ``config.data`` describes (e.g. synthetic tasks in a
    benchmark); they must give episode ``i`` as a function of the seed and ``i`` alone.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        progress_bar: bool = True,
        distributed: Distributed | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.config = config = resolve_config(config)
        self.run = RunDirectory(run_dir)
        self.run_dir = self.run.path
        self.spec = algorithm_spec(config.algorithm.name)
        self.dist = distributed or Distributed.current()
        self.progress_bar = progress_bar and self.dist.is_main
        self.device = self.dist.device(resolve_device(config.device))
        if config.train.cuda_graph:
            self._check_cuda_graph()
        torch.manual_seed(config.seed)
        self.sources = sources or build_sources(config, self.device)
        model = build_model(config, self.sources.input_shape)
        self.algorithm = build_algorithm(
            config, model, self.sources.train_classes, self.sources.input_shape
        )
        self.algorithm.to(self.device)
        self.optimizer, self.scheduler = build_optimizer(config, self.algorithm)
        self.captured: CapturedMetaStep | None = None  # the CUDA graph of train.cuda_graph
        self.progress = Progress(processes=self.dist.world_size)
        self.ignore: tuple[str, ...] = ()  # config keys a loaded checkpoint may differ in
        if self.dist.active:
            self._start_together()

    def _check_cuda_graph(self) -> None:
        if self.spec.schedules:
            raise ValueError(
                f"{self.spec.name}'s meta-step follows a schedule that a captured CUDA graph "
                "would freeze; leave train.cuda_graph unset"
            )
        if self.device.type != "cuda":
            raise ValueError(
                f"train.cuda_graph replays a captured CUDA graph; this run is on {self.device}: "
                "leave train.cuda_graph unset (or false), or use device=cuda"
            )

    def _start_together(self) -> None:
        """Give every process rank 0's initial weights; say how the meta-batch is split."""
        weights = {k: v.cpu() for k, v in self.algorithm.state_dict().items()}
        self.algorithm.load_state_dict(
            self.dist.broadcast_object(weights, "sharing the initial weights")
        )
        tasks, processes = self.config.sampler.meta_batch, self.dist.world_size
        if self.dist.is_main and tasks % processes:
            warnings.warn(
                f"sampler.meta_batch={tasks} is not a multiple of the {processes} processes: "
                "shares differ by one task (the gradient is still the mean over all tasks), and "
                "the processes with more tasks set the pace",
                RuntimeWarning,
                stacklevel=3,
            )

    # ----------------------------------------------------------------- run directory
    @classmethod
    def create(
        cls,
        config: RunConfig,
        run_dir: Path,
        progress_bar: bool = True,
        distributed: Distributed | None = None,
    ) -> Trainer:
        """A new run; refuses a directory that already holds one (resume it instead). The
        configuration is written once the data, model and algorithm are built."""
        d = distributed or Distributed.current()
        run = RunDirectory(run_dir)
        d.on_main(run.refuse_existing, "checking the run directory")
        trainer = cls(config, run.path, progress_bar, d)
        d.on_main(lambda: run.create(trainer.config), "creating the run directory")
        return trainer

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        progress_bar: bool = True,
        eval_overrides: Sequence[str] = (),
        distributed: Distributed | None = None,
    ) -> Trainer:
        """The run in ``run_dir``, restored from its newest checkpoint (or from the start).

        ``eval_overrides`` (``key=value``) may change only the test protocol: keys under
        ``eval.``, ``sampler.test_`` and ``algorithm.test_inner_steps``. A run may resume on a
        different number of processes than it was trained on (see docs/DISTRIBUTED.md).
        """
        d = distributed or Distributed.current()
        run = RunDirectory(run_dir)
        config = d.on_main(run.read_config, "reading the run's configuration")
        eval_overrides = [upgrade_override(item) for item in eval_overrides]
        keys = [item.partition("=")[0] for item in eval_overrides]
        for key in keys:
            if not key.startswith(EVAL_SETTINGS):
                raise ValueError(
                    f"{key!r} cannot change after training; only the test protocol can: "
                    f"{', '.join(p + '*' for p in EVAL_SETTINGS)}"
                )
        trainer = cls(apply_overrides(config, eval_overrides), run.path, progress_bar, d)
        trainer.ignore = tuple(f"config.{key}" for key in keys)
        latest = d.on_main(
            lambda: run.load_latest(trainer.expected(), trainer.ignore),
            "loading the newest checkpoint",
        )
        if latest is not None:
            trainer.load_state(latest[1])
        return trainer

    def expected(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this run."""
        return fingerprint(self.algorithm, self.config)

    def state(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": vars(self.progress).copy(),
            "rng": capture_rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(state["algorithm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress(**state["progress"])
        restore_rng_state(state["rng"])

    # ----------------------------------------------------------------- training
    def fit(self) -> dict[str, Any]:
        """Train to ``train.iterations`` (or early stop, or ``train.time_limit_minutes``), then
        test the best model."""
        t = self.config.train
        self._note_process_count()
        log = self._metrics_log()
        bar = tqdm(
            total=t.iterations, initial=self.progress.step, disable=not self.progress_bar,
            desc=self.config.name, dynamic_ncols=True,
        )  # fmt: skip
        done_here, seconds_before = 0, self.progress.train_seconds
        try:
            out_of_time = self._out_of_time()
            while self.progress.step < t.iterations and not out_of_time:
                started = time.perf_counter()
                out = self.train_step()
                self.progress.train_seconds += time.perf_counter() - started
                done_here += 1
                step = self.progress.step
                seconds_here = self.progress.train_seconds - seconds_before
                rate = done_here * self.config.sampler.meta_batch / seconds_here
                bar.update(1)
                if step % t.log_every == 0 or step == t.iterations:
                    values = {"loss": float(out.loss), "tasks_per_s": rate}
                    if out.accuracy is not None:
                        values["accuracy"] = float(out.accuracy.mean())
                    if log is not None:
                        # torch allows a tensor lr; the config's is a float
                        lr = cast(float, self.scheduler.get_last_lr()[0])
                        log.log(step, "train", **values, lr=lr)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()})
                out_of_time = stop = self._out_of_time()
                if t.val_every and step % t.val_every == 0:
                    stop = self.validate(log) or stop
                if step % t.checkpoint_every == 0 or step == t.iterations or stop:
                    self._save_checkpoint(step)
                if stop:
                    break
        finally:
            bar.close()
            if log is not None:
                log.close()
        return self.test()

    def _out_of_time(self) -> bool:
        """True once ``train.time_limit_minutes`` of training time have passed (rank 0's clock
        decides, so every process stops at the same step)."""
        limit = self.config.train.time_limit_minutes
        if limit is None:
            return False
        out = self.progress.train_seconds >= 60 * limit
        if self.dist.active:
            out = self.dist.broadcast_object(out, "agreeing on train.time_limit_minutes")
        return out

    def _note_process_count(self) -> None:
        """Record how many processes train from here; warn when that changed on resume."""
        before, now = self.progress.processes, self.dist.world_size
        if before != now and self.progress.step < self.config.train.iterations:
            if self.dist.is_main:
                warnings.warn(
                    f"this run was trained on {before} process(es) up to step "
                    f"{self.progress.step} and continues on {now}: the episodes are the same, but "
                    "the meta-gradient is summed in a different order, so the result is not "
                    "bitwise identical to an uninterrupted run",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self.progress.processes = now

    def _metrics_log(self) -> MetricsLog | None:
        """The metrics log, on rank 0 only."""
        if not self.dist.is_main:
            return None
        return MetricsLog(self.run, resume_step=self.progress.step)

    def _save_checkpoint(self, step: int) -> None:
        t = self.config.train

        def save() -> None:
            self.run.save_checkpoint(step, self.state(), t.keep_checkpoints, self.expected())

        self.dist.on_main(save, "writing a checkpoint")

    def train_step(self) -> MetaOutput:
        """One meta-step on batch ``progress.step`` of the training stream."""
        step = self.progress.step
        out = self.meta_gradients(step)
        loss = float(out.loss)
        if not math.isfinite(loss):
            raise NonFiniteLossError(step + 1, loss)
        clip = self.config.optimizer.grad_clip
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.algorithm.parameters(), clip)
        self.optimizer.step()
        self.scheduler.step()
        self.progress.step = step + 1
        return out

    def meta_gradients(self, step: int) -> MetaOutput:
        """Set ``.grad`` to the meta-gradient of training batch ``step``; return its output.

        With several processes each computes its share of the batch and the gradients are
        averaged, so every process holds the gradient of the mean loss over the whole batch.
        """
        batch = local_batch(self.sources.train, step, self.dist)
        self.algorithm.train()
        self.algorithm.start_step(step, self.config.train.iterations)
        self.optimizer.zero_grad(set_to_none=True)
        chunk = self.config.algorithm.chunk_size
        with precision(self.config.train.precision, self.device):
            if self.config.train.cuda_graph:
                if self.captured is None:
                    self.captured = CapturedMetaStep(self.algorithm, batch, chunk)
                out = self.captured(batch)
            else:
                out = self.algorithm.accumulate_gradients(batch, chunk)
        total = self.config.sampler.meta_batch
        average_gradients(self.algorithm.parameters(), self.dist, batch.num_tasks / total)
        return gather_output(out, self.dist, total)

    def validate(self, log: MetricsLog | None) -> bool:
        """Score the fixed validation episodes; keep the best; True when early stopping fires."""
        scores = self.evaluate(self.sources.val, self.config.train.val_episodes)
        summary_key = "accuracy" if "accuracy" in scores else "loss"
        summary = summarize(scores[summary_key])
        if log is not None:
            log.log(
                self.progress.step, "val", **{summary_key: summary.mean, "ci95": summary.ci95},
                train_seconds=round(self.progress.train_seconds, 1),
            )  # fmt: skip
        score = summary.mean if summary_key == "accuracy" else -summary.mean
        p = self.progress
        if score > p.best_score:
            p.best_score, p.best_step, p.stale_validations = score, p.step, 0
            self.dist.on_main(
                lambda: self.run.save_best(self.state(), p.step, self.expected()),
                "writing best.pt",
            )
            return False
        p.stale_validations += 1
        patience = self.config.train.early_stop_patience
        return patience is not None and p.stale_validations >= patience

    def evaluate(
        self, source: Any, episodes: int, inner_steps: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-episode scores on ``source``'s fixed episodes (``inner_steps`` for algorithms with
        an inner loop); several processes share the episodes and all get every score, in
        order."""
        self.algorithm.eval()
        evaluate: Callable[[TaskBatch], MetaOutput] = self.algorithm.evaluate
        if inner_steps is not None:
            learner = cast(InnerLoopLearner, self.algorithm)  # its entry reads test_inner_steps
            evaluate = partial(learner.evaluate, steps=inner_steps)
        return gather_scores(evaluate, source, episodes, self.dist)

    # ----------------------------------------------------------------- testing
    def test(
        self, episodes: int | None = None, use_best: bool = True, name: str = "report"
    ) -> dict[str, Any]:
        """Score the fixed test episodes with the best (or final) weights.

        Writes ``<name>.json`` and ``<name>_episodes.csv`` (per-episode scores) in the run dir.
        """
        best = use_best and self.load_best()
        episodes = episodes or self.config.eval.episodes
        scores = self.evaluate(self.sources.test, episodes)
        inner_loop = "test_inner_steps" in self.spec.settings
        report = protocol(
            self.config, episodes=episodes, iterations=self.progress.step,
            train_seconds=self.progress.train_seconds, processes=self.dist.world_size,
            test_inner_steps=self.config.algorithm.test_inner_steps if inner_loop else None,
            batch_statistics=uses_batch_statistics(self.algorithm),
        )  # fmt: skip
        report["checkpoint"] = (
            f"best on validation (step {self.progress.best_step})"
            if best
            else f"final (step {self.progress.step})"
        )
        for metric, values in scores.items():
            report[metric] = vars(summarize(values))
        if self.config.eval.inner_steps and inner_loop:
            report["by_inner_steps"] = {
                str(k): {
                    metric: vars(summarize(values))
                    for metric, values in self.evaluate(self.sources.test, episodes, k).items()
                }
                for k in self.config.eval.inner_steps
            }

        def write() -> None:
            write_episodes(self.run.episodes(name), scores)
            self.run.report(name).write_text(json.dumps(report, indent=2))

        self.dist.on_main(write, "writing the test report")
        return report

    def load_best(self) -> bool:
        """Load the best-on-validation weights when the run has them; True if it did."""

        def read() -> dict[str, Any] | None:
            state = self.run.load_best(self.expected(), self.ignore)
            return None if state is None else state["algorithm"]

        weights = self.dist.on_main(read, "loading best.pt")
        if weights is None:
            return False
        self.algorithm.load_state_dict(weights)
        return True
