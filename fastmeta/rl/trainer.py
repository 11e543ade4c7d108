"""The meta-RL trainer: meta-train, checkpoint, resume exactly, and test a configuration.

A run lives in a :class:`~fastmeta.run.directory.RunDirectory`: ``config.yaml`` (the resolved
:class:`~fastmeta.rl.config.RLConfig`), ``metrics.jsonl`` / ``metrics.csv`` (one row per
meta-step with the returns before and after adaptation and the training time so far),
``checkpoints/`` (atomic, verified, the last few and ``best.pt``) and the test report. Every
random draw of a meta-step is seeded by ``(seed, iteration)`` (see :mod:`fastmeta.rl.seeding`)
and the optimiser state is checkpointed, so a run killed at any point and resumed ends with
the weights and test returns of an uninterrupted run (same machine). ``best.pt`` is the
policy with the best validation return (``train.val_every``), else the best post-adaptation
training return, as in the MAML paper's experiments.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fastmeta.config import apply_overrides, dump_yaml, to_dict
from fastmeta.rl.build import (
    build_algorithm,
    build_env,
    build_policy,
    build_streams,
    check_config,
    resolve_device,
)
from fastmeta.rl.config import RLConfig, read_rl_config
from fastmeta.rl.evaluation import evaluate, step_sizes, summarize
from fastmeta.rl.seeding import seed_of
from fastmeta.rl.sharding import Share
from fastmeta.rl.tasks import Tasks
from fastmeta.run.checkpoint import model_fingerprint
from fastmeta.run.directory import RunDirectory
from fastmeta.train.distributed import Distributed
from fastmeta.train.logging import MetricsLog
from fastmeta.train.rng import capture_rng_state, restore_rng_state
from fastmeta.train.signals import Interrupted, StopRequests

REPORT = "report"
EVAL_PREFIX = "eval."


class NonFiniteReturnError(RuntimeError):
    """A meta-step gave a non-finite return or objective; the last checkpoint is kept."""


@dataclass
class Progress:
    """What is carried across meta-steps and checkpoints besides the weights."""

    iteration: int = 0
    train_seconds: float = 0.0
    best_return: float = -math.inf
    best_iteration: int = -1


class RLTrainer:
    """Meta-trains ``config`` in ``run_dir``; :meth:`fit` trains to the end and tests."""

    def __init__(
        self,
        config: RLConfig,
        run_dir: Path,
        progress_bar: bool = True,
        distributed: Distributed | None = None,
    ) -> None:
        check_config(config)
        self.config = config
        self.run = RunDirectory(run_dir)
        self.dist = distributed or Distributed.current()
        self.progress_bar = progress_bar and self.dist.is_main
        self.device = self.dist.device(resolve_device(config))
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)
        self.env = build_env(config, self.device)
        self.streams = build_streams(config)
        self.policy = build_policy(config, self.env).to(self.device)
        self.algorithm = build_algorithm(config, self.policy, self.env)
        self.progress = Progress()
        if self.dist.active:
            weights = {k: v.cpu() for k, v in self.policy.state_dict().items()}
            shared = self.dist.broadcast_object(weights, "sharing the initial weights")
            self.policy.load_state_dict(shared)

    # ----------------------------------------------------------------- run directory
    @classmethod
    def create(
        cls,
        config: RLConfig,
        run_dir: Path,
        progress_bar: bool = True,
        distributed: Distributed | None = None,
    ) -> RLTrainer:
        """A new run in ``run_dir`` (refused when it holds one); ``config.yaml`` is written
        once everything is built."""
        d = distributed or Distributed.current()
        run = RunDirectory(run_dir)
        d.on_main(run.refuse_existing, "checking the run directory")
        trainer = cls(config, run.path, progress_bar, d)

        def start() -> None:
            run.path.mkdir(parents=True, exist_ok=True)
            run.config_file.write_text(dump_yaml(config))

        d.on_main(start, "creating the run directory")
        return trainer

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        progress_bar: bool = True,
        eval_overrides: list[str] | tuple[str, ...] = (),
        distributed: Distributed | None = None,
    ) -> RLTrainer:
        """The run in ``run_dir`` at its newest checkpoint; ``eval_overrides`` (``eval.*``
        only) change the test protocol."""
        d = distributed or Distributed.current()
        run = RunDirectory(run_dir)
        config = d.on_main(lambda: read_run(run), "reading the run's configuration")
        for item in eval_overrides:
            if not item.startswith(EVAL_PREFIX):
                raise ValueError(
                    f"{item.partition('=')[0]!r} cannot change after training; only the test "
                    "protocol can (eval.*)"
                )
        trainer = cls(apply_overrides(config, list(eval_overrides)), run.path, progress_bar, d)
        latest = d.on_main(
            lambda: run.load_latest(trainer.expected(), ignore=("rl_config.eval",)),
            "loading the newest checkpoint",
        )
        if latest is not None:
            trainer.load_state(latest[1])
        return trainer

    def expected(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this run."""
        return {"model": model_fingerprint(self.policy), "rl_config": to_dict(self.config)}

    def state(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "progress": vars(self.progress).copy(),
            "rng": capture_rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.progress = Progress(**state["progress"])
        restore_rng_state(state["rng"])

    def save(self) -> None:
        """Checkpoint the current iteration (rank 0 writes; every rank waits for it)."""
        state = self.state()
        step, keep = self.progress.iteration, self.config.train.keep_checkpoints
        self.dist.on_main(
            lambda: self.run.save_checkpoint(step, state, keep, self.expected()),
            "writing a checkpoint",
        )

    # ----------------------------------------------------------------- training
    def fit(self) -> dict[str, Any]:
        """Train to ``train.iterations`` (or ``train.time_limit_minutes``), then test."""
        config, p = self.config, self.progress
        share = Share.of(config.sampling.meta_batch, self.dist)
        metrics = MetricsLog(self.run, resume_step=p.iteration) if self.dist.is_main else None
        bar = tqdm(
            total=config.train.iterations,
            initial=p.iteration,
            desc=config.name,
            disable=not self.progress_bar,
            dynamic_ncols=True,
        )
        try:
            with StopRequests() as stop:
                while p.iteration < config.train.iterations and not self._out_of_time():
                    values = self._meta_step(share)
                    if metrics is not None:
                        metrics.log(p.iteration, "train", **values)
                    bar.update(1)
                    bar.set_postfix(
                        before=f"{values['return_before']:.1f}",
                        after=f"{values['return_after']:.1f}",
                    )
                    self._keep_best(values, metrics)
                    every = config.train.checkpoint_every
                    if p.iteration % every == 0 or p.iteration == config.train.iterations:
                        self.save()
                    if stop.signal is not None:
                        self.save()
                        raise Interrupted(p.iteration, stop.signal, str(self.run.path))
                self.save()
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
        return self.test()

    def _out_of_time(self) -> bool:
        limit = self.config.train.time_limit_minutes
        over = limit is not None and self.progress.train_seconds >= 60 * limit
        if self.dist.active:  # every process stops at the same iteration: rank 0's clock
            over = bool(self.dist.broadcast_object(over, "agreeing on the time limit"))
        return over

    def _meta_step(self, share: Share) -> dict[str, float]:
        p = self.progress
        start = time.perf_counter()
        tasks = share.local(self.streams.train.batch(p.iteration))
        tasks = Tasks(tasks.indices, tasks.params.to(self.device))
        values = self.algorithm.meta_step(tasks, seed_of(self.config.seed, p.iteration), share)
        p.train_seconds += time.perf_counter() - start
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteReturnError(
                f"meta-step {p.iteration} gave non-finite values {values}; the checkpoints up to "
                "the last one are kept (try a smaller algorithm.inner_lr or max_kl / outer_lr)"
            )
        p.iteration += 1
        return {**values, "train_seconds": round(p.train_seconds, 3)}

    def _keep_best(self, values: dict[str, float], metrics: MetricsLog | None) -> None:
        """Validate when due and write ``best.pt`` when the score improves."""
        config, p = self.config, self.progress
        if config.train.val_every:
            if p.iteration % config.train.val_every:
                return
            returns = evaluate(
                self.algorithm,
                self.streams.val,
                config.train.val_tasks,
                config,
                self.device,
                self.dist,
                steps=max(config.algorithm.inner_steps, 1),
            )
            score = float(returns[-1].mean())
            if metrics is not None:
                metrics.log(
                    p.iteration, "val", return_after=score, train_seconds=round(p.train_seconds, 3)
                )
        else:
            score = values["return_after"]
        if score > p.best_return:
            p.best_return, p.best_iteration = score, p.iteration
            state, step = self.state(), p.iteration
            self.dist.on_main(
                lambda: self.run.save_best(state, step, self.expected()), "writing best.pt"
            )

    # ----------------------------------------------------------------- testing
    def test(self, use_best: bool = True, name: str = REPORT) -> dict[str, Any]:
        """Score the best (else the last) policy on the test tasks; write ``<name>.json``
        and ``<name>_episodes.csv`` (each task's return after each step)."""
        checkpoint = "last"
        if use_best:
            best = self.dist.on_main(
                lambda: self.run.load_best(self.expected(), ignore=("rl_config.eval",)),
                "loading best.pt",
            )
            if best is not None:
                self.policy.load_state_dict(best["policy"])
                checkpoint = f"best.pt (iteration {best['progress']['iteration']})"
        c = self.config
        returns = evaluate(
            self.algorithm, self.streams.test, c.eval.tasks, c, self.device, self.dist
        )
        report = {
            "name": c.name,
            "algorithm": c.algorithm.name,
            "env": c.env.name + (f" ({c.env.metaworld_task})" if "ml1" in c.env.name else ""),
            "test_tasks": c.eval.tasks,
            "episodes": c.eval.episodes,
            "step_sizes": step_sizes(c, c.eval.steps),
            "iterations": self.progress.iteration,
            "train_seconds": round(self.progress.train_seconds, 1),
            "processes": self.dist.world_size,
            "checkpoint": checkpoint,
            "reference": c.reference,
            "returns": summarize(returns),
        }
        self.dist.on_main(lambda: write_report(self.run, name, report, returns), "writing report")
        return report


def read_run(run: RunDirectory) -> RLConfig:
    """The configuration of the meta-RL run in ``run``."""
    if not run.config_file.is_file():
        raise FileNotFoundError(f"{run.path} holds no config.yaml: it is not a run directory")
    return read_rl_config(run.config_file.read_text(), where=str(run.config_file))


def write_report(run: RunDirectory, name: str, report: dict[str, Any], returns: Any) -> None:
    run.report(name).write_text(json.dumps(report, indent=2) + "\n")
    with run.episodes(name).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", *(f"return_after_{k}" for k in range(returns.shape[0]))])
        for task, row in enumerate(returns.T.tolist()):
            writer.writerow([task, *(f"{v:.6g}" for v in row)])
