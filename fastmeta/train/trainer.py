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
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm import tqdm

from fastmeta.algorithms.base import MetaOutput
from fastmeta.algorithms.inner_loop import InnerLoopLearner
from fastmeta.algorithms.registry import algorithm_spec
from fastmeta.datasets.registry import dataset_info
from fastmeta.functional.params import uses_batch_statistics
from fastmeta.run.build import (
    Sources,
    build_algorithm,
    build_model,
    build_optimizer,
    build_sources,
    build_test_source,
    resolve_device,
)
from fastmeta.run.checkpoint import CheckpointMismatchError
from fastmeta.run.directory import RunDirectory, fingerprint
from fastmeta.run.folder_split import FolderSplit
from fastmeta.run.resume import check_changes, describe, differences
from fastmeta.run.settings import (
    apply_run_overrides,
    image_size,
    resolve_config,
    upgrade_override,
)
from fastmeta.run_config import DataConfig, RunConfig
from fastmeta.tasks import TaskBatch
from fastmeta.train.cuda_graph import CapturedMetaStep
from fastmeta.train.distributed import Distributed
from fastmeta.train.evaluate import summarize
from fastmeta.train.guard import (
    DivergedError,
    NonFiniteLossError,
    check_loss,
    check_weights,
    healthy,
)
from fastmeta.train.logging import MetricsLog
from fastmeta.train.precision import precision, resolve_precision
from fastmeta.train.report import protocol, write_episodes
from fastmeta.train.rng import capture_rng_state, restore_rng_state
from fastmeta.train.sharding import (
    average_gradients,
    gather_output,
    gather_scores,
    local_batch,
)
from fastmeta.train.signals import Interrupted, StopRequests
from fastmeta.train.test_heads import score_heads

EVAL_SETTINGS = ("eval.", "sampler.test_", "algorithm.test_inner_steps")


class NonFiniteTestError(RuntimeError):
    """Test episodes gave non-finite losses (the model diverges on them); the report written
    counts them apart."""


@dataclass
class Progress:
    """What is carried across steps and checkpoints besides the weights."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    stale_validations: int = 0
    train_seconds: float = 0.0
    processes: int = 1
    first_losses: list[float] = field(default_factory=list)  # the divergence guard's reference
    last_loss: float = math.nan
    healthy_step: int | None = None  # the last checkpoint written while the run looked sound


class Trainer:
    """Meta-trains ``config`` in ``run_dir``; :meth:`fit` runs to the end and tests.

    ``distributed`` is this process's place in a multi-process run (default: the process group
    of :func:`~fastmeta.train.distributed.distributed_session`, or a single process).
    ``sources`` replaces the task sources ``config.data`` describes (e.g. synthetic tasks in a
    benchmark); they must give episode ``i`` as a function of the seed and ``i`` alone.
    ``verbose`` prints what a user watches for (device, resume step, validation scores) to
    stderr; ``folder_split`` is an image folder's class split planned for a new run.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        progress_bar: bool = True,
        distributed: Distributed | None = None,
        sources: Sources | None = None,
        *,
        verbose: bool = False,
        folder_split: FolderSplit | None = None,
    ) -> None:
        self.config = config = resolve_config(config)
        self.verbose = verbose
        self.run = RunDirectory(run_dir)
        self.run_dir = self.run.path
        self.spec = algorithm_spec(config.algorithm.name)
        self.dist = distributed or Distributed.current()
        self.progress_bar = progress_bar and self.dist.is_main
        self.device = self.dist.device(resolve_device(config.device))
        if config.train.cuda_graph:
            self._check_cuda_graph()
        if (
            config.train.target_accuracy is not None
            and dataset_info(config.data.dataset).image_size is None
        ):
            raise ValueError(
                f"train.target_accuracy needs an accuracy; {config.data.dataset} is regression, "
                "validated by its loss: leave train.target_accuracy unset"
            )
        random.seed(config.seed)  # user code drawing from Python's or NumPy's generator too
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)
        self.sources = sources or build_sources(config, self.device, folder_split)
        self.tested_on: RunConfig | None = None  # another dataset's test split (use_test_data)
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
        *,
        force: bool = False,
        verbose: bool = False,
        folder_split: FolderSplit | None = None,
    ) -> Trainer:
        """A new run. Everything is checked and built before anything is written: a directory
        that holds a run is refused (resume it instead), so is a non-empty one unless ``force``
        (and nothing of its files is changed then); ``config.yaml`` (and an image folder's
        ``split.yaml``) are written once data, model and algorithm are built."""
        d = distributed or Distributed.current()
        run = RunDirectory(run_dir)
        d.on_main(lambda: run.refuse_existing(force), "checking the run directory")
        trainer = cls(config, run.path, progress_bar, d, verbose=verbose, folder_split=folder_split)

        split = None if folder_split is None else folder_split.to_yaml()
        d.on_main(lambda: run.create(trainer.config, force, split), "creating the run directory")
        return trainer

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        progress_bar: bool = True,
        eval_overrides: Sequence[str] = (),
        distributed: Distributed | None = None,
        *,
        changes: Sequence[str] = (),
        verbose: bool = False,
    ) -> Trainer:
        """The run in ``run_dir``, restored from its newest checkpoint (or from the start).

        ``eval_overrides`` (``key=value``) may change only the test protocol: keys under
        ``eval.``, ``sampler.test_`` and ``algorithm.test_inner_steps`` (what ``fastmeta eval``
        does). ``changes`` continue training with other settings (see
        :mod:`fastmeta.run.resume`): they are written into the run's configuration and history,
        and the run is then no longer bitwise equal to an uninterrupted one. A run may resume on
        a different number of processes than it was trained on (see docs/DISTRIBUTED.md).
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
        changed = differences(config, resolve_config(apply_run_overrides(config, changes)))
        check_changes(changed, algorithm_spec(config.algorithm.name).learned_inner_lr)
        wanted = apply_run_overrides(config, [*changes, *eval_overrides])
        trainer = cls(wanted, run.path, progress_bar, d, verbose=verbose)
        history = d.on_main(run.history, "reading the run's history")
        ever_changed = {k for event in history for k in event.get("changed", {})} | set(changed)
        trainer.ignore = tuple(f"config.{key}" for key in [*keys, *sorted(ever_changed)])
        try:
            latest = d.on_main(
                lambda: run.load_latest(trainer.expected(), trainer.ignore),
                "loading the newest checkpoint",
            )
        except CheckpointMismatchError as error:
            listed = "\n  ".join(error.differences)
            raise CheckpointMismatchError(
                error.path,
                error.differences,
                f"{run.config_file} differs from what the run's checkpoints were trained with:"
                f"\n  {listed}\nRestore it; to continue with other settings, give them as "
                f"`fastmeta train --resume {run.path} key=value` (train.iterations, learning "
                "rates, clipping, validation, logging, the test protocol).",
            ) from None
        if latest is not None:
            trainer.load_state(latest[1])
        if changed:
            trainer._record_changes(changed)
        return trainer

    def _record_changes(self, changed: dict[str, tuple[Any, Any]]) -> None:
        """Write the changed settings into the run (under its lock) and say what they mean."""

        def record() -> None:
            with self.run.lock():
                self.run.write_config(self.config)
                self.run.record({"event": "resume", "step": self.progress.step,
                                 "changed": {k: list(v) for k, v in changed.items()}})  # fmt: skip

        self.dist.on_main(record, "recording the changed settings")
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            factor = group["lr"] / base if base else 1.0  # where the schedule had got to
            group["initial_lr"] = group["lr"] = self.config.optimizer.lr * factor
        self.scheduler.base_lrs = [self.config.optimizer.lr] * len(self.scheduler.base_lrs)
        self.say(
            f"changed on resume at step {self.progress.step}: {describe(changed)}; the run is no "
            "longer bitwise equal to an uninterrupted one"
        )

    def say(self, message: str) -> None:
        """Print ``message`` to stderr (beside the progress bar) when verbose, on rank 0."""
        if self.verbose and self.dist.is_main:
            tqdm.write(message, file=sys.stderr)

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
        test the best model, holding the run's lock throughout (on rank 0).

        Raises :class:`~fastmeta.train.signals.Interrupted` after saving a checkpoint when
        SIGINT or SIGTERM arrives, :class:`~fastmeta.train.guard.NonFiniteLossError` or
        :class:`~fastmeta.train.guard.DivergedError` when training diverges (the checkpoints
        written before are kept), and :class:`NonFiniteTestError` when test episodes give
        non-finite losses (unless ``eval.allow_non_finite``)."""
        if not self.dist.is_main:
            self._train()
            return self.test()
        with self.run.lock():
            try:
                self._train()
            except (NonFiniteLossError, DivergedError):
                self._go_back_to_health()
                raise
            return self.test()

    def _go_back_to_health(self) -> None:
        """After divergence, set aside the checkpoints written after the last sound one."""
        healthy_step = self.progress.healthy_step
        moved = self.run.set_aside_after(-1 if healthy_step is None else healthy_step)
        if moved:
            self.say(
                f"set aside {len(moved)} checkpoint(s) written while the run was diverging "
                f"(renamed *.diverged): {', '.join(p.name for p in moved)}"
            )

    def _train(self) -> None:
        t = self.config.train
        self._note_process_count()
        self._announce()
        log = self._metrics_log()
        bar = tqdm(
            total=t.iterations, initial=self.progress.step, disable=not self.progress_bar,
            desc=self.config.name, dynamic_ncols=True, file=sys.stderr,
        )  # fmt: skip
        done_here, seconds_before = 0, self.progress.train_seconds
        validated = saved = -1  # the steps validated and saved last
        try:
            with StopRequests() as requests:
                # a resumed run may have spent its time or reached its target; within the
                # loop, those stops (and the others) break it after the step's checkpoint
                done = self._out_of_time() or self._reached_target()
                while self.progress.step < t.iterations and not done:
                    started = time.perf_counter()
                    out = self.train_step()
                    self.progress.train_seconds += time.perf_counter() - started
                    done_here += 1
                    step = self.progress.step
                    seconds_here = self.progress.train_seconds - seconds_before
                    bar.update(1)
                    if t.log_every and (step % t.log_every == 0 or step == t.iterations):
                        rate = done_here * self.config.sampler.meta_batch / seconds_here
                        self._log_step(log, bar, out, rate)
                    out_of_time = self._out_of_time()
                    interrupted = self._agreed(requests.signal, "agreeing on a stop signal")
                    stop = out_of_time or interrupted is not None
                    if t.val_every and step % t.val_every == 0:
                        validated = step
                        stop = self.validate(log) or stop
                    if (t.checkpoint_every and step % t.checkpoint_every == 0) or stop:
                        self._save_checkpoint(step)
                        saved = step
                    if interrupted is not None:
                        raise Interrupted(step, interrupted, str(self.run.path))
                    if stop:
                        break
                step = self.progress.step
                final = bool(done_here and t.val_every and validated != step)
                if final:
                    self.validate(log)  # the weights training ended with get their chance
                if done_here and (saved != step or final):
                    self._save_checkpoint(step)
                if t.iterations == 0 and self.run.weights_file() is None:
                    self._save_checkpoint(0)  # the frozen network is the run's model
        finally:
            bar.close()
            if log is not None:
                log.close()

    def _announce(self) -> None:
        """Say where the run trains, from which step and for how long."""
        t, p = self.config.train, self.progress
        threads = f" ({torch.get_num_threads()} threads)" if self.device.type == "cpu" else ""
        where = f"on {self.device}{threads}"
        if self.dist.active:
            where += f", {self.dist.world_size} processes"
        if t.precision == "auto":
            where += f", in {resolve_precision('auto', self.device)} (train.precision=auto)"
        if t.iterations == 0:
            self.say(f"{self.run.path}: no meta-training (train.iterations=0), {where}")
        elif p.step:
            self.say(f"{self.run.path}: resuming at step {p.step} of {t.iterations}, {where}")
        else:
            self.say(f"{self.run.path}: training {t.iterations} meta-steps {where}")
        if t.time_limit_minutes is not None:
            left = max(0.0, t.time_limit_minutes - p.train_seconds / 60)
            self.say(
                f"stops after {t.time_limit_minutes:g} minutes of training "
                f"({left:.1f} left), or at step {t.iterations}"
            )

    def _log_step(self, log: MetricsLog | None, bar: Any, out: MetaOutput, rate: float) -> None:
        values = {"loss": float(out.loss), "tasks_per_s": rate}
        if out.accuracy is not None:
            values["accuracy"] = float(out.accuracy.mean())
        if log is not None:
            # torch allows a tensor lr; the config's is a float
            lr = cast(float, self.scheduler.get_last_lr()[0])
            log.log(self.progress.step, "train", **values, lr=lr)
        bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()})

    def _agreed(self, value: Any, what: str) -> Any:
        """Rank 0's ``value`` on every process (so all stop at the same step)."""
        return self.dist.broadcast_object(value, what) if self.dist.active else value

    def _out_of_time(self) -> bool:
        """True once ``train.time_limit_minutes`` of training time have passed (rank 0's clock
        decides, so every process stops at the same step)."""
        limit = self.config.train.time_limit_minutes
        if limit is None:
            return False
        out = self.progress.train_seconds >= 60 * limit
        agreed: bool = self._agreed(out, "agreeing on train.time_limit_minutes")
        return agreed

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
        t, p = self.config.train, self.progress
        check_weights(self.algorithm, step)  # never keep exploded weights
        if healthy(p.last_loss, p.first_losses):
            p.healthy_step = step

        def save() -> None:
            self.run.save_checkpoint(
                step, self.state(), t.keep_checkpoints, self.expected(), protect=p.healthy_step
            )

        self.dist.on_main(save, "writing a checkpoint")

    def train_step(self) -> MetaOutput:
        """One meta-step on batch ``progress.step`` of the training stream."""
        step = self.progress.step
        out = self.meta_gradients(step)
        self.progress.last_loss = float(out.loss)
        check_loss(self.progress.last_loss, step + 1, self.progress.first_losses)
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
        graph = self.config.train.cuda_graph
        with precision(self.config.train.precision, self.device, cache=not graph):
            if graph:
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
        shown = (
            f"accuracy {100 * summary.mean:.2f} +- {100 * summary.ci95:.2f} %"
            if summary_key == "accuracy"
            else f"loss {summary.mean:.4g} +- {summary.ci95:.2g}"
        )
        best = " (best so far)" if score > p.best_score else ""
        self.say(f"step {p.step}: validation {shown}{best}")
        if score > p.best_score:
            p.best_score, p.best_step, p.stale_validations = score, p.step, 0
            self.dist.on_main(
                lambda: self.run.save_best(self.state(), p.step, self.expected()),
                "writing best.pt",
            )
            if self._reached_target():
                target = self.config.train.target_accuracy
                self.say(
                    f"step {p.step}: reached train.target_accuracy={target:g} after "
                    f"{p.train_seconds:.0f} s of training; stopping"
                )
                return True
            return False
        p.stale_validations += 1
        patience = self.config.train.early_stop_patience
        return patience is not None and p.stale_validations >= patience

    def _reached_target(self) -> bool:
        """True once the best validation accuracy is at ``train.target_accuracy`` or above."""
        target = self.config.train.target_accuracy
        return target is not None and self.progress.best_score >= target

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
        with precision("float32", self.device):  # evaluation in float32 (TF32 off on CUDA)
            return gather_scores(evaluate, source, episodes, self.dist)

    # ----------------------------------------------------------------- testing
    def use_test_data(self, changes: Sequence[str]) -> None:
        """Test on another dataset's test split (transfer, cross-domain): ``changes`` are
        ``data.*`` settings of that data (``data.dataset=cub``, ``data.root=FOLDER``...) on top
        of a fresh data section of the run's image size; the weights and protocol stay the run's.
        """
        wrong = [c for c in changes if not c.startswith("data.")]
        if wrong:
            raise ValueError(f"{wrong[0]!r}: the data to test on takes data.* settings only")
        size = f"data.image_size={image_size(self.config.data)}"
        fresh = replace(self.config, data=DataConfig())
        target = resolve_config(apply_run_overrides(fresh, [size, *changes]))
        if dataset_info(target.data.dataset).tasks is not None:
            raise ValueError(f"data.dataset={target.data.dataset} has no images to test on")
        source, shape = build_test_source(target, self.device)
        if shape != self.sources.input_shape:
            raise ValueError(
                f"{target.data.dataset} gives examples of shape {list(shape)}, the run was "
                f"trained on {list(self.sources.input_shape)}: set data.image_size or "
                "data.channels to match"
            )
        self.sources = replace(self.sources, test=source)
        self.tested_on = target

    def test(
        self,
        episodes: int | None = None,
        use_best: bool = True,
        name: str = "report",
        allow_untrained: bool = False,
    ) -> dict[str, Any]:
        """Score the fixed test episodes with the best (or final) weights.

        Writes ``<name>.json`` and ``<name>_episodes.csv`` (per-episode scores) in the run dir.
        A run with no trained weights is refused unless ``allow_untrained`` (the report then
        says so). Episodes whose query loss is non-finite are left out of every score and
        counted; unless ``eval.allow_non_finite``, the report is written and
        :class:`NonFiniteTestError` raised.
        """
        best = use_best and self.load_best()
        frozen = self.config.train.iterations == 0
        if not best and self.progress.step == 0 and not allow_untrained and not frozen:
            raise ValueError(
                f"{self.run.path} holds no trained weights (no checkpoint yet): train it first, "
                "or add --allow-untrained to score the random initialisation"
            )
        episodes = episodes or self.config.eval.episodes
        scores = _finite_episodes(self.evaluate(self.sources.test, episodes))
        inner_loop = "test_inner_steps" in self.spec.settings
        report = protocol(
            self.config, episodes=episodes, iterations=self.progress.step,
            train_seconds=self.progress.train_seconds, processes=self.dist.world_size,
            test_inner_steps=self.config.algorithm.test_inner_steps if inner_loop else None,
            batch_statistics=uses_batch_statistics(self.algorithm),
        )  # fmt: skip
        if self.config.train.precision == "auto":  # what it meant on this machine
            report["train_precision"] = f"auto: {resolve_precision('auto', self.device)}"
        if self.tested_on is not None:
            tested = self.tested_on.data
            report["trained_on"] = report["dataset"]
            report["dataset"] = tested.dataset + (f" {tested.root}" if tested.root else "")
            report["split"] = "test"
        if best:
            report["checkpoint"] = f"best on validation (step {self.progress.best_step})"
        elif self.progress.step:
            report["checkpoint"] = f"final (step {self.progress.step})"
        elif frozen:
            report["checkpoint"] = "the network as built (train.iterations=0: no meta-training)"
        else:
            report["checkpoint"] = "untrained (the random initialisation, --allow-untrained)"
        for metric, values in scores.items():
            report[metric] = vars(summarize(values))
        non_finite = report["loss"]["non_finite"]
        if self.config.eval.inner_steps and inner_loop:
            report["by_inner_steps"] = {
                str(k): {
                    metric: vars(summarize(values))
                    for metric, values in _finite_episodes(
                        self.evaluate(self.sources.test, episodes, k)
                    ).items()
                }
                for k in self.config.eval.inner_steps
            }

        heads: dict[str, torch.Tensor] = {}
        if self.config.eval.heads:
            heads = self.dist.on_main(
                lambda: score_heads(
                    self.algorithm, self.config.algorithm.name, self.sources.test, episodes,
                    self.config.eval.heads, self.device,
                ),
                "scoring the test-time heads",
            )  # fmt: skip
            report["heads"] = {h: vars(summarize(values)) for h, values in heads.items()}

        def write() -> None:
            columns = {**scores, **{f"head:{h}": values for h, values in heads.items()}}
            write_episodes(self.run.episodes(name), columns)
            self.run.report(name).write_text(json.dumps(report, indent=2))

        self.dist.on_main(write, "writing the test report")
        if non_finite and not self.config.eval.allow_non_finite:
            raise NonFiniteTestError(
                f"{non_finite} of {episodes} test episodes gave a non-finite query loss (the "
                f"adapted model diverges on them); their scores are left out of "
                f"{self.run.report(name)}: lower the learning rates, or set "
                "eval.allow_non_finite=true to accept the report"
            )
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


def _finite_episodes(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``scores`` with every metric of an episode whose loss is non-finite set to NaN, so the
    summaries leave the whole episode out (its accuracy would be argmax of NaN logits)."""
    bad = ~torch.isfinite(scores["loss"])
    if not bad.any():
        return scores
    return {name: values.masked_fill(bad, math.nan) for name, values in scores.items()}
