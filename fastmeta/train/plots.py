"""Pictures of a run (the optional ``plot`` extra): learning curves, adapted sine curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fastmeta.pictures import pyplot, save_figure

if TYPE_CHECKING:
    from fastmeta.algorithms.inner_loop import InnerLoopLearner
    from fastmeta.datasets.sine import SineTasks
    from fastmeta.run.directory import RunDirectory
    from fastmeta.train.trainer import Trainer


def draw_pictures(trainer: Trainer) -> list[Path]:
    """Every picture that fits the run: learning curves, and adapted curves for sine runs."""
    paths = [plot_run(trainer.run)]
    if trainer.config.data.dataset == "sine":
        paths.append(plot_sine_adaptation(trainer))
    return paths


def smoothed(values: list[float], span: int = 20) -> list[float]:
    """An exponential moving average of ``values`` (weight ``2 / (span + 1)``), bias-corrected
    so it starts at the first value: the trend under the noise of single meta-batches."""
    alpha, average, weight, out = 2.0 / (span + 1), 0.0, 0.0, []
    for value in values:
        average = (1 - alpha) * average + alpha * value
        weight = (1 - alpha) * weight + alpha
        out.append(average / weight)
    return out


def plot_run(run: RunDirectory) -> Path:
    """Draw ``curves.png`` from ``metrics.jsonl``: training loss/accuracy (each meta-batch faint,
    the smoothed trend bold) and the validation score with its 95 % interval."""
    rows = [json.loads(line) for line in run.metrics_jsonl.read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    val = [r for r in rows if r["phase"] == "val"]
    panels = [("loss", "training query loss", train)]
    if any("accuracy" in r for r in train):
        panels.append(("accuracy", "training query accuracy", train))
    if val:
        key = "accuracy" if "accuracy" in val[0] else "loss"
        panels.append((key, f"validation {key}", val))
    fig, axes = pyplot().subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (key, title, series) in zip(axes[0], panels, strict=True):
        steps, values = [r["step"] for r in series], [r[key] for r in series]
        if series is val:
            ci = [r.get("ci95", 0.0) for r in series]
            low = [v - c for v, c in zip(values, ci, strict=True)]
            high = [v + c for v, c in zip(values, ci, strict=True)]
            ax.fill_between(steps, low, high, alpha=0.25)
            ax.plot(steps, values, marker="o", markersize=3)
        else:
            ax.plot(steps, values, alpha=0.3, linewidth=0.8)
            ax.plot(steps, smoothed(values), linewidth=1.6)
        ax.set_title(title)
        ax.set_xlabel("iteration")
    return save_figure(fig, run.picture("curves"), dpi=100)


def validation_against_time(run: RunDirectory) -> tuple[list[float], list[float], list[float]]:
    """A run's validation accuracy (and 95 % half-width) against minutes of training, from the
    ``train_seconds`` its validation rows carry; an error that says so if it has none."""
    rows = [json.loads(line) for line in run.metrics_jsonl.read_text().splitlines()]
    val = [r for r in rows if r["phase"] == "val" and "accuracy" in r and "train_seconds" in r]
    if not val:
        raise ValueError(
            f"{run.path}: no validation accuracy with a training clock in metrics.jsonl; "
            "train with train.val_every > 0 to draw it against time"
        )
    minutes = [r["train_seconds"] / 60 for r in val]
    return minutes, [r["accuracy"] for r in val], [r.get("ci95", 0.0) for r in val]


def plot_runs_against_time(runs: Sequence[RunDirectory], path: Path) -> Path:
    """Draw several runs' validation accuracy against minutes of training on one axis (the
    picture of a CPU-budget comparison), each with its 95 % band and, where the run has been
    tested, its test accuracy (the report's) as a star at its last minute of training."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.0))
    for run in runs:
        minutes, accuracy, ci = validation_against_time(run)
        line = ax.plot(minutes, accuracy, marker="o", markersize=3, label=run.path.name)[0]
        low = [a - c for a, c in zip(accuracy, ci, strict=True)]
        high = [a + c for a, c in zip(accuracy, ci, strict=True)]
        ax.fill_between(minutes, low, high, alpha=0.2, color=line.get_color())
        if run.report().exists():
            report = json.loads(run.report().read_text())
            test = report["accuracy"]
            ax.errorbar(
                [report["train_seconds"] / 60],
                [test["mean"]],
                yerr=[test["ci95"]],
                marker="*",
                markersize=9,
                color=line.get_color(),
                capsize=3,
            )
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("validation accuracy (test: star)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_sine_adaptation(trainer: Trainer, tasks: int = 3) -> Path:
    """``adapted_curves.png``: truth, support points and the model after 0, 1 and 10 steps."""
    import torch

    from fastmeta.datasets.sine import sine_curve
    from fastmeta.tasks import TaskBatch

    # a sine run tests on SineTasks, with an inner-loop learner (regression: no metric learner)
    source = cast("SineTasks", trainer.sources.test)
    algorithm = cast("InnerLoopLearner", trainer.algorithm)
    support = source.episodes(0, tasks)
    amplitude, phase = source.parameters(0, tasks)
    grid = torch.linspace(-5, 5, 200).reshape(1, -1, 1).expand(tasks, -1, -1)
    dense = TaskBatch(support.support_x, support.support_y, grid, torch.zeros_like(grid))
    fig, axes = pyplot().subplots(1, tasks, figsize=(4.5 * tasks, 3.5), squeeze=False)
    curves = {steps: algorithm.evaluate(dense, steps).predictions for steps in (0, 1, 10)}
    for i, ax in enumerate(axes[0]):
        x = grid[i, :, 0]
        ax.plot(x, sine_curve(amplitude[i], phase[i], x), "k", label="ground truth")
        for (steps, predictions), style in zip(curves.items(), (":", "--", "-"), strict=True):
            ax.plot(x, predictions[i, :, 0], style, label=f"{steps} steps")
        ax.scatter(support.support_x[i, :, 0], support.support_y[i, :, 0], c="r", label="support")
        ax.set_title(f"test task {i}, K={support.support_x.shape[1]}")
    axes[0][0].legend(fontsize=8)
    return save_figure(fig, trainer.run.picture("adapted_curves"), dpi=100)
